"""Every model of the zoo through the shared contract (tests/contract.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from contract import ModelContract, run_model_contract, to_numpy, weights
from keras_genzoo import (
    GAN,
    VAE,
    WGANGP,
    AutoEncoder,
    BigramLM,
    DiffusionModel,
    MiniGPT,
)
from keras_genzoo import datasets

CODES = np.random.RandomState(0).randn(4, 4).astype("float32")


def _image_bad_inputs(images):
    return [
        (images.astype("float32"), "divide by 255"),
        (images.reshape(len(images), -1), "rank 2"),
        (tf.data.Dataset.from_tensor_slices(images), "Batch it"),
    ]


def _image_contract(make_model, images, labels=None, adversarial=False,
                    outputs=None, can_generate=True, generate=None,
                    bad_inputs=()):
    def default_generate(model, seed):
        return model.generate(3, seed=seed)

    generate = generate or default_generate
    return ModelContract(
        make_model=make_model,
        fit_data=images, fit_y=labels, steps_per_epoch=2,
        fit_kwargs={"batch_size": 32},
        batch=(images[:32], None if labels is None else labels[:32]),
        outputs=outputs or (lambda model: model.decode(CODES)),
        generate=generate if can_generate else None,
        loss_key=None if adversarial else "loss",
        networks=(lambda m: [m.generator, m.discriminator])
        if adversarial else (lambda m: [m]),
        bad_inputs=_image_bad_inputs(images) + list(bad_inputs),
    )


def _scores(model):
    images = np.linspace(0, 1, 2 * 28 * 28, dtype="float32")
    images = images.reshape(2, 28, 28, 1)
    if model.num_classes:
        return to_numpy(model([images, np.array([1, 2])]))
    return to_numpy(model(images))


def _denoised(model):
    # the trained and the averaged network on fixed noisy digits in [-1, 1]
    noisy = np.linspace(-1, 1, 2 * 28 * 28, dtype="float32")
    inputs = [noisy.reshape(2, 28, 28, 1), np.array([0.3, 0.8], "float32")]
    if model.num_classes:
        inputs.append(np.array([3, model.num_classes], "int32"))  # 3, none
    return np.concatenate([to_numpy(model(inputs)),
                           to_numpy(model.ema_network(inputs))])


def _diffusion_contract(images, labels=None):
    def generate(model, seed):
        if model.num_classes:
            return model.generate(3, steps=3, seed=seed, labels=[1, 2, 3],
                                  guidance=2.0)
        return model.generate(3, steps=3, seed=seed)

    conditional = labels is not None
    return _image_contract(
        lambda: DiffusionModel(num_classes=10 if conditional else None,
                               widths=(8,), seed=0),
        images, labels, outputs=_denoised, generate=generate,
        bad_inputs=[(images, "conditional .* has no labels")]
        if conditional else ())


def _text_contract(cls, **kwargs):
    text = datasets.load_text("tiny_shakespeare")[:3000]
    model_kwargs = dict(sequence_length=16, seed=0, **kwargs)
    make_model = lambda: cls.from_text(text, **model_kwargs)  # noqa: E731
    train_ds, _ = make_model().make_datasets(text, batch_size=16)
    inputs, targets = next(iter(train_ds))
    probe = np.asarray(inputs)[:2]
    return ModelContract(
        make_model=make_model,
        fit_data=train_ds, steps_per_epoch=int(train_ds.cardinality()),
        batch=(np.asarray(inputs), np.asarray(targets)),
        outputs=lambda model: to_numpy(model(probe)),
        generate=lambda model, seed: model.generate(
            "ROMEO:", max_new_tokens=12, seed=seed),
        bad_inputs=[
            (text, "make_datasets"),
            (np.asarray(inputs), "no targets"),
            (tf.data.Dataset.from_tensor_slices(np.asarray(inputs)).batch(4),
             "not \\(inputs, targets\\) pairs"),
        ],
        epochs=3,
    )


def _contracts(mnist):
    images, labels = mnist[0][:64], mnist[1][:64]
    tiny = dict(seed=0)
    gan_kwargs = dict(latent_dim=8, generator_filters=(8,),
                      discriminator_filters=(8,), **tiny)
    return {
        "autoencoder": lambda: _image_contract(
            lambda: AutoEncoder(latent_dim=4, filters=(8,), noise_stddev=0.1,
                                **tiny), images, can_generate=False),
        "vae": lambda: _image_contract(
            lambda: VAE(latent_dim=4, filters=(8,), **tiny), images),
        "conditional_vae": lambda: _image_contract(
            lambda: VAE(latent_dim=4, filters=(8,), num_classes=10, **tiny),
            images, labels,
            outputs=lambda model: model.decode(CODES, labels=[0, 1, 2, 9]),
            generate=lambda model, seed: model.generate(
                3, seed=seed, labels=[1, 2, 3]),
            bad_inputs=[(images, "conditional .* has no labels")]),
        "gan": lambda: _image_contract(
            lambda: GAN(**gan_kwargs), images, adversarial=True,
            outputs=_scores),
        "conditional_gan": lambda: _image_contract(
            lambda: GAN(num_classes=10, **gan_kwargs), images, labels,
            adversarial=True, outputs=_scores),
        "wgan_gp": lambda: _image_contract(
            lambda: WGANGP(d_steps=2, **gan_kwargs), images,
            adversarial=True, outputs=_scores),
        "diffusion": lambda: _diffusion_contract(images),
        "conditional_diffusion": lambda: _diffusion_contract(images, labels),
        "bigram": lambda: _text_contract(BigramLM),
        "minigpt": lambda: _text_contract(MiniGPT, num_layers=1, num_heads=2,
                                          hidden_dim=16),
    }


@pytest.mark.parametrize("name", ["autoencoder", "vae", "conditional_vae",
                                  "gan",
                                  "conditional_gan", "wgan_gp", "diffusion",
                                  "conditional_diffusion", "bigram",
                                  "minigpt"])
def test_model_contract(mnist, tmp_path, name):
    run_model_contract(_contracts(mnist)[name](), tmp_path)


@pytest.mark.skipif(
    __import__("keras").backend.backend() == "torch",
    reason="Keras 3.15's torch export fails for any subclassed model "
           "(torch.export dynamic_shapes)")
@pytest.mark.parametrize("name", ["autoencoder", "conditional_vae", "gan",
                                  "conditional_gan", "diffusion",
                                  "conditional_diffusion"])
def test_a_trained_image_model_exports(name, tmp_path):
    # straight after `fit`: Keras inferred the signature from a first call,
    # which a model trained on JAX, or a GAN, never had ("never called"),
    # and on TensorFlow traced a conditional GAN or a diffusion model on
    # images alone; served: what `call` gives
    import keras

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8)
    labels = np.arange(16) % 3
    conditional = name.startswith("conditional_")
    classes = 3 if conditional else None
    family = name.replace("conditional_", "")
    model = {
        "autoencoder": lambda: AutoEncoder(latent_dim=2, filters=(4,)),
        "vae": lambda: VAE(latent_dim=2, filters=(4,), num_classes=classes),
        "gan": lambda: GAN(latent_dim=2, generator_filters=(4,),
                           discriminator_filters=(4,), num_classes=classes),
        "diffusion": lambda: DiffusionModel(widths=(8,),
                                            num_classes=classes),
    }[family]()
    model.fit(images, labels if conditional else None, epochs=1,
              batch_size=8, verbose=0)
    inputs = [(images[:2] / 255.0).astype("float32")]
    if name.endswith("diffusion"):
        inputs.append(np.array([0.3, 0.7], "float32"))
    if conditional:
        inputs.append(labels[:2].astype("int32"))
    if len(inputs) == 1:
        inputs = inputs[0]
    model.export(str(tmp_path / "export"), verbose=False)
    restored = tf.saved_model.load(str(tmp_path / "export"))
    served = restored.serve(tf.nest.map_structure(tf.constant, inputs))
    expected = model(inputs)
    if name in ("conditional_vae",):  # the sampled code differs per call
        served, expected = served["z_mean"], expected["z_mean"]
    for got, want in zip(tf.nest.flatten(served),
                         keras.tree.flatten(expected)):
        np.testing.assert_allclose(np.asarray(got), to_numpy(want),
                                   rtol=1e-4, atol=1e-5)
    if keras.backend.backend() == "tensorflow":
        # TensorFlow's own SavedModel: Keras' serving signature where
        # `call` takes images alone, none where it takes more
        tf.saved_model.save(model, str(tmp_path / "saved"))
        saved = tf.saved_model.load(str(tmp_path / "saved"))
        takes_images = name in ("autoencoder", "gan")
        assert list(saved.signatures) == (
            ["serving_default"] if takes_images else [])


@pytest.mark.filterwarnings("error::DeprecationWarning")
@pytest.mark.parametrize("name", ["autoencoder", "conditional_vae", "gan",
                                  "wgan_gp", "diffusion", "minigpt"])
def test_the_usual_calls_pass_where_warnings_are_errors(mnist, name):
    # numpy 2 warns converting a Keras variable (on PyTorch any tensor)
    # with `keras.ops.convert_to_numpy`: every zoo `fit` failed (its
    # divergence check's snapshot), a GAN's `compile`, making a diffusion
    # model, where warnings are errors (`-W error`, pytest's
    # `filterwarnings = error`), where plain Keras' `fit` passed
    contract = _contracts(mnist)[name]()
    model = contract.make_model()
    model.fit(contract.fit_data, contract.fit_y, epochs=1, verbose=0,
              **contract.fit_kwargs)
    x, y = contract.batch
    if contract.loss_key is not None or not isinstance(x, np.ndarray):
        model.evaluate(x, y, verbose=0)
    if contract.generate is not None:
        contract.generate(model, 1)


@pytest.mark.parametrize("make, rows", [
    (lambda: VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1)),
     ["encoder", "decoder"]),
    (lambda: GAN(latent_dim=2, generator_filters=(4,),
                 discriminator_filters=(4,), image_shape=(8, 8, 1)),
     ["generator", "discriminator"]),
    (lambda: DiffusionModel(widths=(4,), image_shape=(8, 8, 1)),
     ["unet", "ema_unet"]),
    (lambda: MiniGPT.from_text("abcd", sequence_length=8, num_layers=1,
                               num_heads=1, hidden_dim=8), ["block_0"]),
])
def test_summary_before_fit_shows_the_networks(make, rows):
    # before the first `fit`, `image_shape=` given or not, the summary
    # listed no networks and 0 parameters; the diffusion model's averaged
    # copy had the network's name (two rows "unet")
    lines = []
    model = make()
    model.summary(print_fn=lambda line, **_: lines.append(line))
    text = "\n".join(lines)
    assert model.built and model.count_params() > 0
    assert "Total params: 0" not in text
    for row in rows:
        assert text.count(f"│ {row} ") == 1, (row, text)
    VAE(latent_dim=2).summary(print_fn=lambda *_, **__: None)  # no shape


@pytest.mark.parametrize("make", [
    lambda: VAE(latent_dim=2, filters=(4,), image_shape=(8, 8, 1), seed=0),
    lambda: GAN(latent_dim=2, generator_filters=(4,),
                discriminator_filters=(4,), image_shape=(8, 8, 1), seed=0),
    lambda: DiffusionModel(widths=(4,), image_shape=(8, 8, 1), seed=0),
])
def test_set_weights_into_a_model_made_with_its_image_shape(make):
    # `load_weights` built such a model first; `set_weights` failed
    # ("expecting 0 weights")
    source = make()
    source.build((None, 8, 8, 1))
    target = make()
    target.set_weights(source.get_weights())
    np.testing.assert_array_equal(to_numpy(target.generate(2, seed=1)),
                                  to_numpy(source.generate(2, seed=1)))


@pytest.mark.parametrize("name", ["vae", "gan", "diffusion"])
def test_validation_leaves_a_seeded_run_as_it_was(mnist, name):
    # `fit`'s validation after each epoch drew its noise (a VAE's codes,
    # a GAN's latent vectors, a diffusion model's levels) from the training
    # streams: with `validation_data` a seeded run trained to other weights
    # (by up to 6e-3 after two epochs here, on every backend)
    contract = _contracts(mnist)[name]()
    images = mnist[0][:64]

    def trained(validation_data):
        keras.utils.set_random_seed(0)
        model = contract.make_model()
        model.fit(images, epochs=2, batch_size=32, shuffle=False, verbose=0,
                  validation_data=validation_data)
        return model

    alone = trained(None)
    validated = trained((mnist[0][64:96],))
    for a, b in zip(weights(alone), weights(validated)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["vae", "gan", "diffusion"])
def test_a_refused_generate_takes_no_seed(name):
    # `generate(2, batch_size=0)` of a VAE or a diffusion model drew the
    # noise, moving the model's seed generator on, before the refusal: the
    # later samples of a seeded model came one draw late
    from keras_genzoo import DiffusionModel

    model = {"vae": lambda: VAE(latent_dim=2, filters=(4,), seed=0),
             "gan": lambda: GAN(latent_dim=4, generator_filters=(4,),
                                discriminator_filters=(4,), seed=0),
             "diffusion": lambda: DiffusionModel(widths=(4,), seed=0)}[name]()
    model.build((None, 8, 8, 1))
    calls = [lambda: model.generate(2, batch_size=0)]
    if name == "diffusion":
        calls.append(lambda: model.inpaint(
            np.zeros((2, 8, 8, 1), "float32"), np.ones((8, 8)), steps=2,
            batch_size=0))
    for call in calls:
        before = np.array(keras.ops.convert_to_numpy(
            model.seed_generator.state))
        with pytest.raises(ValueError, match="batch_size"):
            call()
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(model.seed_generator.state), before)
