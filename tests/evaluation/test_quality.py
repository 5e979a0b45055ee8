"""The sample-quality section: distances between generated and held-out images in a feature space.

Stand-in models make the answers known: one whose samples ARE the held-out images (every distance 0,
precision = recall = 1), one that always draws the same image (the Fréchet distance has a closed form,
recall is 0).
"""
import numpy as np
import pytest
import torch

from genzoo.data import ImageDataset, ImageInfo, every_tenth_split
from genzoo.data.continuous import to_unit
from genzoo.errors import GenzooError
from genzoo.evaluation.quality import quality_section, reference_positions
from genzoo.features import PixelExtractor
from genzoo.metrics.quality import class_histogram_scores, inception_score

PROTOCOL_FIELDS = {"samples", "seed", "reference_split", "reference_images", "reference_selection", "extractor",
                   "weights_hash", "resize", "dim"}


class Replay:
    """Stands in for a generative model: its 'samples' are the given images in order (cycling)."""

    device = torch.device("cpu")

    def __init__(self, images):
        self.images, self.pos, self.calls, self.seeds = images, 0, [], set()

    def default_condition(self, n):
        return None

    def sample(self, n, *, generator=None, condition=None, **_):
        self.calls.append(n)
        self.seeds.add(generator.initial_seed())
        idx = (torch.arange(n) + self.pos) % len(self.images)
        self.pos += n
        return self.images[idx]


def small_data(spec="small", n=300, flip=False) -> ImageDataset:
    """300 random 1x6x6 images with 5 levels (test split: every tenth, 30 images)."""
    info = ImageInfo(channels=1, height=6, width=6, num_values=5)
    x = torch.randint(0, 5, (n, 1, 6, 6), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    return ImageDataset(spec, 4 - x if flip else x, info, every_tenth_split(n))


def by_metric(records):
    return {r["metric"]: r for r in records}


def test_samples_equal_to_the_held_out_images_are_at_distance_zero(pokemon, tmp_path):
    test = pokemon.images("test")  # 80 images
    model = Replay(test)
    recs = by_metric(quality_section(model, pokemon, features="pixels", n=80, seed=3, cache_dir=tmp_path,
                                     batch_size=25))
    assert recs["frechet_distance"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert recs["precision"]["value"] == 1.0 and recs["recall"]["value"] == 1.0
    assert recs["coverage"]["value"] == 1.0
    assert recs["density"]["value"] >= 1.0  # every sample is a reference point: its own ball plus k neighbours'
    assert model.calls == [25, 25, 25, 5] and model.seeds == {3}  # streamed in batches from one seeded generator
    assert not {"inception_score", "classes_generated"} & set(recs)  # class scores need a classifier


def test_a_constant_model_is_far_and_recalls_nothing(pokemon, tmp_path):
    test = pokemon.images("test")
    const = torch.zeros(1, *pokemon.info.shape, dtype=torch.long)  # palette colour 0 everywhere
    assert not (test == const).flatten(1).all(1).any()  # not one of the held-out images
    recs = by_metric(quality_section(Replay(const), pokemon, features="pixels", n=80, seed=0, cache_dir=tmp_path))
    real = to_unit(test, pokemon.info).flatten(1).double().numpy()  # (80, 1200)
    c = to_unit(const, pokemon.info).flatten().double().numpy()
    # Fréchet distance to a point mass: ||mu - c||^2 + Tr(C) (its covariance is 0)
    expected = ((real.mean(0) - c) ** 2).sum() + real.var(0, ddof=1).sum()
    assert recs["frechet_distance"]["value"] == pytest.approx(expected, rel=1e-6)
    assert recs["recall"]["value"] == 0.0  # the samples' k-NN balls have radius 0
    same = by_metric(quality_section(Replay(test), pokemon, features="pixels", n=80, seed=0, cache_dir=tmp_path))
    assert recs["kernel_distance"]["value"] > same["kernel_distance"]["value"]
    assert recs["coverage"]["value"] < 1.0


def test_every_record_names_its_protocol(pokemon, tmp_path):
    records = quality_section(Replay(pokemon.images("test")), pokemon, features=PixelExtractor(), n=100, seed=5,
                              cache_dir=tmp_path, kid_subsets=7)  # an extractor object works like its spec
    assert [r["metric"] for r in records] == ["frechet_distance", "kernel_distance", "kernel_distance_std",
                                              "precision", "recall", "density", "coverage"]
    pixels = PixelExtractor()
    for r in records:
        p = r["protocol"]
        assert set(p) >= PROTOCOL_FIELDS, r["metric"]
        assert p["extractor"] == "pixels" and p["weights_hash"] == pixels.weights_hash and p["resize"] == pixels.resize
        assert p["samples"] == 100 and p["reference_images"] == 80  # n capped at the split's size
        assert p["reference_split"] == "test" and p["reference_selection"] == "all" and p["seed"] == 5
        assert p["dim"] == 3 * 20 * 20  # palette indices become RGB
    kid = by_metric(records)["kernel_distance"]["protocol"]
    assert kid["kid_subsets"] == 7 and kid["kid_subset_size"] == 80
    assert by_metric(records)["precision"]["protocol"]["k"] == 3 and by_metric(records)["density"]["protocol"]["k"] == 5


def test_fewer_samples_than_the_split_use_a_fixed_random_subset(tmp_path):
    pos, rule = reference_positions(80, 30)
    again, _ = reference_positions(80, 30)
    assert torch.equal(pos, again) and len(set(pos.tolist())) == 30 and torch.equal(pos, pos.sort().values)
    assert rule == "random subset (seed 0)" and pos.max() >= 30  # not just the first 30
    data = small_data()
    recs = quality_section(Replay(data.images("train")), data, features="pixels", n=12, seed=0, cache_dir=tmp_path)
    pos12, rule12 = reference_positions(30, 12)
    assert {(r["protocol"]["reference_images"], r["protocol"]["reference_selection"]) for r in recs} == {(12, rule12)}
    # the reference is those 12 test images: replaying exactly them puts the samples at distance 0
    same = by_metric(quality_section(Replay(data.images("test", pos12)), data, features="pixels", n=12, seed=0,
                                     cache_dir=tmp_path))
    assert same["frechet_distance"]["value"] == pytest.approx(0.0, abs=1e-9) and same["recall"]["value"] == 1.0


def test_reference_features_come_from_the_cache_the_second_time(tmp_path, monkeypatch):
    data = small_data()
    reads = []
    images = data.images

    def counting(split, positions=None):
        reads.append(split)
        return images(split, positions)

    monkeypatch.setattr(data, "images", counting)
    sampled = data.x[data.indices("train")[:20]].long()
    first = quality_section(Replay(sampled), data, features="pixels", n=20, seed=0, cache_dir=tmp_path)
    assert reads and len(list(tmp_path.glob("*.npy"))) == 1
    reads.clear()
    second = quality_section(Replay(sampled), data, features="pixels", n=20, seed=0, cache_dir=tmp_path)
    assert reads == []  # the reference images were not read again
    assert first == second
    quality_section(Replay(sampled), data, features="pixels", n=21, seed=0, cache_dir=tmp_path)
    assert reads and len(list(tmp_path.glob("*.npy"))) == 2  # another count is another cache entry


def test_changed_images_under_the_same_spec_miss_the_cache(tmp_path):
    a, b = small_data("same-spec"), small_data("same-spec", flip=True)
    fake = torch.randint(0, 5, (10, 1, 6, 6), generator=torch.Generator().manual_seed(1))
    ra = by_metric(quality_section(Replay(fake), a, features="pixels", n=10, seed=0, cache_dir=tmp_path))
    rb = by_metric(quality_section(Replay(fake), b, features="pixels", n=10, seed=0, cache_dir=tmp_path))
    assert len(list(tmp_path.glob("*.npy"))) == 2
    assert ra["frechet_distance"]["value"] != rb["frechet_distance"]["value"]


def test_bad_requests_are_one_line_errors(pokemon, tmp_path):
    from genzoo.data import load_dataset

    model = Replay(pokemon.images("test"))
    with pytest.raises(GenzooError, match="at least 6 samples"):
        quality_section(model, pokemon, features="pixels", n=5, seed=0, cache_dir=tmp_path)
    with pytest.raises(GenzooError, match="unknown feature extractor 'nope'"):
        quality_section(model, pokemon, features="nope", n=20, seed=0, cache_dir=tmp_path)
    with pytest.raises(GenzooError, match="unknown split"):
        quality_section(model, pokemon, features="pixels", n=20, seed=0, cache_dir=tmp_path, split="valid")
    with pytest.raises(GenzooError, match="need images"):
        quality_section(model, load_dataset("mixture:ring8"), features="pixels", n=20, seed=0, cache_dir=tmp_path)


def test_inception_score_bounds_and_known_values():
    k = 4
    onehot = np.eye(k)[np.arange(40) % k]  # confident and evenly spread: the maximum, K
    assert inception_score(onehot, 10) == pytest.approx((k, 0.0))
    same = np.tile([0.1, 0.2, 0.3, 0.4], (40, 1))  # one distribution for every image: the minimum, 1
    assert inception_score(same, 10) == pytest.approx((1.0, 0.0))
    half = np.eye(k)[np.arange(40) % 2]  # confident, two of the four classes
    assert inception_score(half, 4)[0] == pytest.approx(2.0)
    # one part: exp(mean KL) by hand for p1 = (1, 0), p2 = (1/2, 1/2), marginal (3/4, 1/4)
    kl1 = np.log(1 / 0.75)
    kl2 = 0.5 * np.log(0.5 / 0.75) + 0.5 * np.log(0.5 / 0.25)
    assert inception_score([[1, 0], [0.5, 0.5]], 1)[0] == pytest.approx(np.exp((kl1 + kl2) / 2))
    with pytest.raises(GenzooError):
        inception_score(onehot[:5], 10)


def test_class_histogram_coverage_and_kl_from_uniform():
    probs = np.eye(4)[[0, 0, 1, 1]] * 0.7 + 0.075  # argmax classes 0, 0, 1, 1 of four
    res = class_histogram_scores(probs)
    assert res["classes_generated"] == 0.5 and res["counts"] == [2, 2, 0, 0]
    assert res["class_kl_from_uniform"] == pytest.approx(np.log(2))  # q = (1/2, 1/2, 0, 0) vs 1/4 each
    even = class_histogram_scores(np.eye(4)[np.arange(8) % 4])
    assert even["classes_generated"] == 1.0 and even["class_kl_from_uniform"] == pytest.approx(0.0)
