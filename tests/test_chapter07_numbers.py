"""The claims of chapters/07_attribution.ipynb, recomputed independently: the probe
with SciPy's optimiser, Grad-CAM, Guided Backpropagation and Integrated Gradients with
Captum, rank correlations with SciPy; the feature-visualisation ratios the prose
states are read from the chapter's own table."""

from __future__ import annotations

import re
import warnings

import nbformat
import pytest
import scipy.stats
import torch
from captum.attr import GuidedBackprop, IntegratedGradients, LayerGradCam, Saliency
from course_env import REPO_ROOT
from test_probe import softmax_regression_scipy

from utils import attribution, data, models, probe, train, vis_optim

CHAPTER = REPO_ROOT / "chapters" / "07_attribution.ipynb"


@pytest.fixture(scope="module")
def split():
    return probe.cifar_probe_split(seed=0)


def held_out_accuracy(pretrained: bool, split) -> float:
    train_index, held_out = split
    features, labels = probe.probe_features(pretrained=pretrained)
    predict = softmax_regression_scipy(features[train_index], labels[train_index], 10,
                                       0.01)
    return float((predict(features[held_out]).argmax(1)
                  == labels[held_out].numpy()).mean())


def test_probe_reaches_about_two_thirds_and_random_features_far_less(split):
    pretrained = held_out_accuracy(True, split)
    random = held_out_accuracy(False, split)
    assert 0.60 <= pretrained <= 0.72  # "about two thirds"
    assert random < pretrained - 0.2  # "far lower"
    assert random > 0.1  # above chance


@pytest.fixture(scope="module")
def classifier(split):
    train_index, _ = split
    features, labels = probe.probe_features(pretrained=True)
    head = probe.fit_linear_probe(features[train_index], labels[train_index])
    return probe.VGG16Classifier(models.vgg16_features(pretrained=True), head).eval()


def test_grad_cam_points_at_the_right_half_nine_times_in_ten(classifier, split):
    _, held_out = split
    images, _ = probe.cifar_probe_images()
    labels = data.cifar10_sample()[1]
    with torch.no_grad():
        predicted = classifier(images[held_out]).argmax(1)
    good = held_out[predicted == labels[held_out]]
    generator = torch.Generator().manual_seed(1)
    pairs = []
    while len(pairs) < 20:
        left, right = good[torch.randint(len(good), (2,), generator=generator)]
        if labels[left] != labels[right]:
            pairs.append((int(left), int(right)))
    composites = torch.stack([torch.cat([images[a], images[b]], dim=-1)
                              for a, b in pairs])
    hits = 0
    for side, index in (("left", 0), ("right", 1)):
        target = torch.tensor([int(labels[pair[index]]) for pair in pairs])
        cam = LayerGradCam(classifier, classifier.features[28]).attribute(
            composites, target=target, relu_attributions=True)[:, 0].detach()
        column = cam.flatten(1).argmax(1) % cam.shape[-1]
        on_left = column < cam.shape[-1] / 2
        hits += int((on_left if side == "left" else ~on_left).sum())
    assert hits >= 34  # "nine composites out of ten" (the chapter finds 36 of 40)


def test_guided_backprop_ignores_a_randomised_probe_and_saliency_does_not(classifier):
    cat = vis_optim.preprocess_for_vgg(data.sample_image("chelsea"), size=96)
    with torch.no_grad():
        target = int(classifier(cat).argmax())
    (_, randomised), = list(attribution.cascading_randomisation(classifier, ["head"]))

    def rho(method, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            before = method(classifier).attribute(cat, target=target, **kwargs)
            after = method(randomised.eval()).attribute(cat, target=target, **kwargs)
        return scipy.stats.spearmanr(before.sum(1).abs().flatten().detach(),
                                     after.sum(1).abs().flatten().detach()).statistic

    assert target == data.CIFAR10_CLASSES.index("cat")
    assert rho(GuidedBackprop) > 0.95  # "practically the same (about 0.99)"
    assert rho(Saliency, abs=True) < 0.5  # "decorrelate as soon as the probe is random"


def test_integrated_gradients_completeness_error_shrinks_with_steps():
    model = train.load_or_train_tinycnn().double().eval()
    images, _ = train.mnist_tensors(train=False)
    digits = images[:4].double()
    black = torch.full_like(digits, -data.MNIST_MEAN / data.MNIST_STD)
    with torch.no_grad():
        target = model(digits).argmax(1)
        gap = (model(digits).gather(1, target[:, None]) -
               model(black).gather(1, target[:, None]))[:, 0]
    errors = {}
    for steps in (8, 128):
        ig = IntegratedGradients(model).attribute(
            digits, baselines=black, target=target, n_steps=steps,
            method="riemann_right")
        errors[steps] = float(((ig.flatten(1).sum(1) - gap).abs() / gap.abs()).max())
    assert errors[8] > 0.03  # "several percent"
    assert errors[128] < 0.01  # "a fraction of a percent"


def chapter_table() -> dict[tuple[str, str], list[float]]:
    nb = nbformat.read(CHAPTER, as_version=4)
    text = next(output.text for cell in nb.cells if cell.cell_type == "code"
                for output in cell.get("outputs", [])
                if output.get("name") == "stdout" and "best natural" in output.text)
    rows = {}
    for line in text.splitlines()[1:]:
        match = re.match(r"(conv\d_\d) ch \d+\s+(.+?)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+"
                         r"([\d.]+)\s+(\d+)%", line)
        rows[match.group(1), match.group(2)] = [float(v) for v in match.groups()[2:]]
    return rows


def test_feature_visualisation_claims_match_the_chapter_table():
    rows = chapter_table()
    for layer in ("conv3_3", "conv4_3"):
        plain = rows[layer, "plain"]
        regularised = rows[layer, "regularised"]
        fourier = rows[layer, "Fourier + decorrelated + robust"]
        assert plain[0] > fourier[0] > regularised[0] > plain[1]  # natural best below
        assert plain[1] < 0  # "best mean activation ... below zero"
        assert 0.25 < regularised[0] / plain[0] < 0.45  # "about a third"
        assert 1.3 < fourier[0] / regularised[0] < 2.1  # "about twice"
        assert regularised[2] < fourier[2] < plain[2]  # high frequencies in between
        assert fourier[3] >= 80  # "keeps most of it under shifts"
    assert rows["conv4_3", "plain"][3] < 50  # "for conv4_3 ... loses most of it"
