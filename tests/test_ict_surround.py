"""A face inside a real head's skull, ears and neck (data/synthetic_head.embed_in_ict_head) and
`prepare --surround-kind ict`, which trains on it."""

import dataclasses

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from se3unet.data.io import Surface
from se3unet.data.prepare import PrepareConfig, make_source, preprocess_entry
from se3unet.data.sources import IctFaceSource, SurreyFaceSource
from se3unet.data.synthetic_head import embed_in_ict_head
from se3unet.geometry.icp import similarity


def test_similarity_recovers_scale_rotation_and_shift():
    points = np.random.default_rng(0).normal(size=(30, 3))
    rotation = Rotation.random(random_state=3).as_matrix()
    scale, found, shift = similarity(points, 1.4 * points @ rotation.T + [5, -2, 9])
    assert scale == pytest.approx(1.4) and np.allclose(found, rotation) and np.allclose(shift, [5, -2, 9])
    mirrored = points * [-1, 1, 1]  # no rotation turns a cloud into its mirror image: the best one is a rotation
    assert np.linalg.det(similarity(points, mirrored)[1]) == pytest.approx(1.0)


def test_an_ict_face_put_back_in_its_own_head_is_that_head_again(ict_model):
    """The fit moves, turns and scales the head onto the face: a head shrunk, turned and moved
    away is brought back onto its own face, its own face's triangles are all dropped (the face
    takes their place) and the rest (skull, ears, neck) reaches as far as the head did."""
    head = IctFaceSource(ict_model, 1, region="head").load((0, 0))
    face = Surface(head.surface.vertices, ict_model.face_triangles)
    rotation = Rotation.random(random_state=5).as_matrix()
    away = Surface(0.8 * head.surface.vertices @ rotation.T + [300, 0, 0], head.surface.triangles)
    whole, share = embed_in_ict_head(face, head.landmarks, ict_model.landmark_names, away,
                                     0.8 * head.landmarks @ rotation.T + [300, 0, 0], ict_model.face_vertices)
    assert np.allclose(whole.vertices.min(axis=0), head.surface.vertices.min(axis=0), atol=1e-6)
    assert np.allclose(whole.vertices.max(axis=0), head.surface.vertices.max(axis=0), atol=1e-6)
    rest = len(whole.triangles) - len(face.triangles)
    assert rest < len(head.surface.triangles) - len(ict_model.face_triangles)  # a rim within the gap went too
    assert 0.3 < share < 0.7


def test_a_surrey_face_in_an_ict_head_keeps_its_face_and_gains_a_skull_and_neck(sfm_model, ict_model):
    sfm = SurreyFaceSource(sfm_model, 1)
    raw = sfm.load((0, 0))
    names = [f"ibug{i + 1}" for i in range(68)]
    landmarks = np.full((68, 3), np.nan)
    landmarks[[names.index(n) for n in sfm.landmark_names]] = raw.landmarks
    head = IctFaceSource(ict_model, 1, region="head").load((0, 0))
    whole, share = embed_in_ict_head(raw.surface, landmarks, names, head.surface, head.landmarks, ict_model.face_vertices)
    assert np.array_equal(whole.vertices[:len(raw.surface.vertices)], raw.surface.vertices)
    assert 0.15 < share < 0.4  # the face a minority, as the test head asks (at most 40%)
    extent = whole.vertices.max(axis=0) - whole.vertices.min(axis=0)
    face_extent = raw.surface.vertices.max(axis=0) - raw.surface.vertices.min(axis=0)
    assert extent[1] > face_extent[1] + 80 and extent[2] > 150  # a neck below, a skull behind


def test_prepare_surrounds_faces_with_ict_heads_and_its_twin_keeps_them_alone(sfm_dir, ict_dir):
    config = PrepareConfig(source="sfm", path=str(sfm_dir), ict_path=str(ict_dir), subjects=3, samples=1024,
                           points=192, val=1, test=1, seed=7, surround=1.0, surround_kind="ict")
    with pytest.raises(ValueError, match="--surround"):
        dataclasses.replace(config, surround=0.0)
    synthetic = dataclasses.replace(config, surround_kind="synthetic")
    assert config.digest() != synthetic.digest()
    source = make_source(config)
    entry = source.entries()[0]
    raw = source.load(entry.key)
    reach = {}
    for name, settings in (("ict", config), ("synthetic", synthetic), ("twin", dataclasses.replace(config, surround_twin=True))):
        scan = preprocess_entry(source, settings, entry, 0)
        centre = raw.landmarks[0] - scan.landmarks[0] * scan.scale
        reach[name] = np.linalg.norm(scan.points * scan.scale + centre - raw.landmarks.mean(axis=0), axis=1).max()
    assert reach["ict"] > 150 and reach["synthetic"] > 150 and reach["twin"] < 140
