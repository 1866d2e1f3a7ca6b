"""The face's own frame, which sets the views of pictures and pages: a face is seen head-on in any
pose."""

import numpy as np
from scipy.spatial.transform import Rotation

from se3unet.geometry.face import face_frame
from se3unet.pages import facing_camera


def test_the_face_frame_turns_with_the_face_and_looks_at_it_from_the_front(sfm_model):
    landmarks = sfm_model.landmarks(sfm_model.shape.mean)
    names = [f"ibug{n}" for n in sfm_model.landmark_numbers]
    frame = face_frame(landmarks, names)
    assert np.allclose(frame @ frame.T, np.eye(3)) and np.isclose(np.linalg.det(frame), 1.0)  # a rotation
    nose, eyes, mouth = (landmarks[names.index(f"ibug{n}")] for n in (31, 40, 52))
    assert (nose - landmarks.mean(0)) @ frame[2] > 10.0  # mm: the nose points at the viewer
    assert (eyes - mouth) @ frame[1] > 30.0  # the eyes above the mouth
    assert np.allclose(frame, np.eye(3), atol=0.2)  # the Surrey model's frame (x across, y up, z out), tilted 9 degrees
    turn = Rotation.random(random_state=8).as_matrix()
    assert np.allclose(face_frame(landmarks @ turn.T + 40.0, names), frame @ turn.T, atol=1e-9)


def test_without_ibug_eyes_and_mouth_there_is_no_face_frame(sfm_model):
    landmarks = sfm_model.landmarks(sfm_model.shape.mean)
    assert face_frame(landmarks, None) is None
    assert face_frame(landmarks, [f"point{i}" for i in range(len(landmarks))]) is None
    names = [f"ibug{n}" for n in sfm_model.landmark_numbers]
    missing_mouth = landmarks.copy()
    missing_mouth[[i for i, n in enumerate(sfm_model.landmark_numbers) if n >= 49]] = np.nan  # not annotated
    assert face_frame(missing_mouth, names) is None


def test_the_page_camera_looks_at_the_face_from_the_front(sfm_model):
    landmarks = sfm_model.landmarks(sfm_model.shape.mean)
    names = [f"ibug{n}" for n in sfm_model.landmark_numbers]
    turn = Rotation.random(random_state=9).as_matrix()
    camera = facing_camera(landmarks @ turn.T, names)
    eye, up = (np.array([camera[k][a] for a in "xyz"]) for k in ("eye", "up"))
    assert np.allclose(eye / np.linalg.norm(eye), face_frame(landmarks, names)[2] @ turn.T)  # out of the face
    assert np.allclose(up, face_frame(landmarks, names)[1] @ turn.T)
    assert facing_camera(landmarks, [f"point{i}" for i in range(len(landmarks))]) is None
