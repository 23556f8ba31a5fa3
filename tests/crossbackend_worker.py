"""Saves every family under one backend and loads it under another.

    python tests/crossbackend_worker.py save DIR [FAMILY ...]
    python tests/crossbackend_worker.py load DIR OUT [FAMILY ...]

`save` (run under the backend of `KERAS_BACKEND`) trains a tiny seeded model
of each family for one epoch, as a user would, saves it to `DIR/FAMILY.keras`
and writes what it computes from then on to `DIR/FAMILY.npz`: deterministic
outputs (decoder and generator outputs on fixed inputs, seeded samples,
greedy and seeded text, logits, mixture scores) and the state of every
optimizer (steps and moments). `load`, run under another backend, loads each
file with `keras.models.load_model` (safe mode), computes the same outputs
into `OUT/FAMILY.npz` and then trains one more epoch, recording in
`OUT/FAMILY.json` the optimizer steps before and after and the losses.
tests/test_cross_backend.py compares the two.
"""

import argparse
import json
import os
import sys

FAMILIES = ["autoencoder", "vae", "conditional_vae", "gan", "conditional_gan",
            "wgan_gp", "diffusion", "conditional_diffusion", "bigram",
            "minigpt", "gmm"]
PROMPT = "First "


def make_family(family):
    """`(model, x, y, fit_kwargs)`: a tiny seeded model and its data."""
    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from resume_worker import make_family as resume_family

    from keras_genzoo import DiffusionModel, GaussianMixture, datasets

    if family == "conditional_diffusion":
        images, labels = datasets.load_embedded_mnist()
        model = DiffusionModel(widths=(8,), num_classes=10, seed=0)
        model.build((None, 28, 28, 1))
        return model, images[:64], labels[:64], {"batch_size": 32,
                                                 "shuffle": False}
    if family == "gmm":
        rng = np.random.default_rng(0)
        x = np.concatenate([rng.normal(-2, 1, (100, 3)),
                            rng.normal(2, 0.5, (100, 3))]).astype("float32")
        return GaussianMixture(2, seed=0), x, None, {}
    model, x, y, kwargs = resume_family(family)
    if not hasattr(x, "element_spec"):  # one epoch of 2 steps is enough
        x = x[:64]
        y = None if y is None else y[:64]
    return model, x, y, kwargs


def optimizers(model):
    """`{name: optimizer}`: a GAN's two, or the one optimizer."""
    if hasattr(model, "d_optimizer"):
        return {"d_optimizer": model.d_optimizer,
                "g_optimizer": model.g_optimizer}
    optimizer = getattr(model, "optimizer", None)
    return {} if optimizer is None else {"optimizer": optimizer}


def optimizer_state(model):
    """Each optimizer's variables by path (steps, moments), numpy."""
    import keras
    import numpy as np

    state = {}
    for name, optimizer in optimizers(model).items():
        for variable in optimizer.variables:
            state[f"opt/{name}/{variable.path}"] = np.asarray(
                keras.ops.convert_to_numpy(variable))
    return state


def outputs(family, model):
    """The deterministic outputs a loaded model must reproduce, numpy."""
    import keras
    import numpy as np

    from keras_genzoo import datasets

    out = {}
    if family == "gmm":
        x = np.linspace(-3, 3, 24, dtype="float32").reshape(8, 3)
        out["score_samples"] = model.score_samples(x)
        out["predict_proba"] = model.predict_proba(x)
        out["sample"] = model.sample(5, seed=3)[0]
        return out
    if family in ("bigram", "minigpt"):
        ids = np.asarray([model.encode_text("First Citizen:")],
                         dtype="int32")
        out["logits"] = np.asarray(model.predict(ids, verbose=0))
        out["greedy_text"] = np.asarray(
            model.generate(PROMPT, max_new_tokens=24, top_k=1))
        if family == "bigram":  # numpy sampling: the same on every backend
            out["seeded_text"] = np.asarray(
                model.generate(PROMPT, max_new_tokens=24, seed=3))
        return out
    images, labels = datasets.load_embedded_mnist()
    images, labels = images[200:204], labels[200:204]
    conditional = bool(getattr(model, "num_classes", None))
    kwargs = {"labels": [1, 3, 5, 7]} if conditional else {}
    if family in ("diffusion", "conditional_diffusion"):
        out["denoised"] = model.generate(4, steps=3, seed=3, **kwargs)
        return out
    if family in ("gan", "conditional_gan", "wgan_gp"):
        out["generated"] = model.generate(4, seed=3, **kwargs)
        noise = np.random.default_rng(5).standard_normal(
            (4, model.latent_dim)).astype("float32")
        out["generator"] = np.asarray(keras.ops.convert_to_numpy(
            model.generate_tensor(noise, np.asarray([1, 3, 5, 7], "int32")
                                  if conditional else None)))
        out["discriminator"] = np.asarray(model.predict(
            (images, labels) if conditional else images, verbose=0))
        return out
    # auto-encoders and VAEs
    label_kwargs = {"labels": labels} if conditional else {}
    z = np.random.default_rng(5).standard_normal(
        (4, model.latent_dim)).astype("float32")
    out["decoder"] = model.decode(z, **kwargs)
    out["encoder"] = model.encode(images, **label_kwargs)
    out["reconstruction"] = model.reconstruct(images, **label_kwargs)
    out["generated"] = model.generate(4, seed=3, **kwargs)
    if family == "vae":
        out["generated_gmm_prior"] = model.generate(4, seed=3, prior="gmm")
    return out


def _fit(model, x, y, kwargs):
    if y is None:
        return model.fit(x, epochs=1, verbose=0, **kwargs)
    return model.fit(x, y, epochs=1, verbose=0, **kwargs)


def save(directory, families):
    import keras
    import numpy as np

    os.makedirs(directory, exist_ok=True)
    for family in families:
        keras.utils.set_random_seed(0)
        model, x, y, kwargs = make_family(family)
        if family == "gmm":
            model.fit(x)
        else:
            model.compile()
            _fit(model, x, y, kwargs)
        if family in ("autoencoder", "vae", "conditional_vae"):
            model.fit_latent_prior(x[:64], n_components=2, **(
                {"labels": y[:64]} if y is not None else {}))
        model.save(os.path.join(directory, f"{family}.keras"))
        np.savez(os.path.join(directory, f"{family}.npz"),
                 **outputs(family, model), **optimizer_state(model))


def load(directory, out_directory, families):
    import keras
    import numpy as np

    import keras_genzoo  # noqa: F401  (registers the classes, as users do)

    os.makedirs(out_directory, exist_ok=True)
    for family in families:
        keras.utils.set_random_seed(1)
        model = keras.models.load_model(
            os.path.join(directory, f"{family}.keras"), safe_mode=True)
        state = optimizer_state(model)
        np.savez(os.path.join(out_directory, f"{family}.npz"),
                 **outputs(family, model), **state)
        record = {"class": type(model).__name__}
        _, x, y, kwargs = make_family(family)
        before = [w.copy() for w in
                  (np.asarray(keras.ops.convert_to_numpy(v))
                   for v in model.trainable_weights)]
        if family == "gmm":  # EM: fitting again from the loaded estimator
            model.fit(x)
            record["losses"] = [float(model.lower_bound_)]
        else:
            history = _fit(model, x, y, kwargs)
            record["losses"] = [float(v[-1]) for k, v in
                                sorted(history.history.items())
                                if "loss" in k]
        record["steps"] = {
            name: int(keras.ops.convert_to_numpy(opt.iterations))
            for name, opt in optimizers(model).items()}
        record["weights_changed"] = any(
            not np.array_equal(a, np.asarray(keras.ops.convert_to_numpy(v)))
            for a, v in zip(before, model.trainable_weights))
        with open(os.path.join(out_directory, f"{family}.json"), "w") as f:
            json.dump(record, f)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["save", "load"])
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    if args.mode == "save":
        directory, families = args.paths[0], args.paths[1:]
        save(directory, families or FAMILIES)
    else:
        directory, out, families = (args.paths[0], args.paths[1],
                                    args.paths[2:])
        load(directory, out, families or FAMILIES)


if __name__ == "__main__":
    main()
