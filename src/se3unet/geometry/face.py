"""A face's own frame from its landmarks: which way is across, up and out of the face, in any
pose. Pictures and pages use it to show a scan head-on."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

# iBUG-68 numbers (1-based) that set a face's frame: eyes (37-42 the subject's right, 43-48 the
# left) and the mouth (49-68).
RIGHT_EYE, LEFT_EYE, MOUTH = range(37, 43), range(43, 49), range(49, 69)


def face_frame(landmarks: np.ndarray, names: Optional[Sequence[str]]) -> Optional[np.ndarray]:
    """Rows: the face's right (from the subject's right eye to the left one, the viewer's right),
    up (from the mouth to the eyes) and front (out of the face, towards a viewer who sees it
    head-on), when the landmarks are iBUG-68 names (ibugN) that include eyes and mouth; else None."""
    if names is None:
        return None
    index = {name: i for i, name in enumerate(names)}

    def mean(numbers):
        rows = [index[f"ibug{n}"] for n in numbers if f"ibug{n}" in index]
        found = landmarks[rows] if rows else np.empty((0, 3))
        found = found[np.isfinite(found).all(axis=1)]
        return found.mean(axis=0) if len(found) else None

    right_eye, left_eye, mouth = mean(RIGHT_EYE), mean(LEFT_EYE), mean(MOUTH)
    if right_eye is None or left_eye is None or mouth is None:
        return None
    across = left_eye - right_eye
    up = (right_eye + left_eye) / 2 - mouth
    up = up - (up @ across) / (across @ across) * across
    if np.linalg.norm(across) < 1e-9 or np.linalg.norm(up) < 1e-9:
        return None
    across, up = across / np.linalg.norm(across), up / np.linalg.norm(up)
    return np.stack([across, up, np.cross(across, up)])
