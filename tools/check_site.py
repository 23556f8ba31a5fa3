"""Opens the built docs site in headless Chromium (`make test` runs this).

Serves a site built by `mkdocs build` over HTTP, then with Debian's
`chromium` and `chromedriver` (through selenium):

1. the home page: its title, every image of the site loaded (`complete`
   and a natural width; images from other sites, the Colab badges, are
   not required), and a screenshot saved;
2. navigation: the "Models" section's VAE link is clicked, the VAE page
   opens and its images load;
3. the Gallery, Command line, Notebooks and Plots pages: every image
   loaded.

Prints one JSON line and exits non-zero on the first failure. Without
chromium or chromedriver it exits 0 with `"skipped"` unless
`GENZOO_REQUIRE_BROWSER=1` (as CI sets), where that is a failure.

    python tools/check_site.py site --screenshot build/site-home.png
"""

import argparse
import functools
import http.server
import json
import os
import shutil
import sys
import threading

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = "chromedriver"


def _serve(directory):
    handler = functools.partial(_QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _browser(binary, driver):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-dev-shm-usage", "--window-size=1280,1400"):
        options.add_argument(flag)
    # the given driver: selenium must not look for (or download) one
    return webdriver.Chrome(service=Service(executable_path=driver),
                            options=options)


# The site's own images; not those from elsewhere (the Colab badges), which
# an offline machine (CI) cannot load
IMAGES = """
const images = Array.from(document.images).filter(
    i => new URL(i.src, location.href).origin === location.origin);
return images.map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]);
"""


def _check_images(browser, page, minimum):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script(
            "return document.readyState === 'complete' && "
            "Array.from(document.images).every(i => i.complete)"))
    images = browser.execute_script(IMAGES)
    broken = [src for src, complete, width in images
              if not (complete and width > 0)]
    assert not broken, f"{page}: images that did not load: {broken}"
    assert len(images) >= minimum, (
        f"{page}: {len(images)} images, expected at least {minimum}")
    return len(images)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", help="folder of the built site")
    parser.add_argument("--screenshot", default=os.path.join(
        "build", "site-home.png"))
    args = parser.parse_args(argv)
    binary = next(filter(None, map(shutil.which, CHROMIUM)), None)
    driver = shutil.which(DRIVER)
    if not (binary and driver):
        message = ("headless Chromium needs Debian's `chromium` and "
                   "`chromium-driver` packages (apt-get install chromium "
                   "chromium-driver)")
        if os.environ.get("GENZOO_REQUIRE_BROWSER") == "1":
            print(f"FAILED: {message}", file=sys.stderr)
            return 1
        print(json.dumps({"skipped": message}))
        return 0
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = _serve(os.path.abspath(args.site))
    root = f"http://127.0.0.1:{server.server_address[1]}/"
    browser = _browser(binary, driver)
    result = {}
    try:
        browser.get(root)
        assert "keras_genzoo" in browser.title, browser.title
        result["home_images"] = _check_images(browser, "home", 1)
        folder = os.path.dirname(os.path.abspath(args.screenshot))
        os.makedirs(folder, exist_ok=True)
        assert browser.save_screenshot(args.screenshot), args.screenshot
        result["screenshot"] = args.screenshot

        # navigation: the VAE entry of the Models section
        link = browser.find_element(
            By.CSS_SELECTOR, "nav.md-nav a[href$='models/vae/']")
        browser.execute_script("arguments[0].click();", link)
        WebDriverWait(browser, 30).until(
            lambda b: b.current_url.rstrip("/").endswith("models/vae"))
        heading = browser.find_element(By.CSS_SELECTOR, "article h1").text
        assert "VAE" in heading, heading
        result["vae_page_images"] = _check_images(browser, "models/vae", 2)

        for page, minimum in (("gallery/", 15), ("cli/", 0),
                              ("notebooks/", 0), ("plots/", 8)):
            browser.get(root + page)
            assert "404" not in browser.title, (page, browser.title)
            result[f"{page.strip('/')}_images"] = _check_images(
                browser, page, minimum)
    finally:
        browser.quit()
        server.shutdown()
    result.update(browser=binary, ok=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
