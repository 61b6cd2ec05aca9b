import numpy as np
import pytest

from adbreak.errors import AdbreakError
from edge.geometry import Geometry


def test_identity_resizes_whole_frame():
    img = np.zeros((540, 960, 3), np.uint8)
    img[:, 480:] = 200
    out = Geometry().to_input(img)
    assert out.shape == (224, 224, 3)
    assert out[:, :100].mean() < 5 and out[:, 124:].mean() > 195


def test_crop_takes_only_the_rectangle():
    img = np.zeros((100, 200, 3), np.uint8)
    img[10:50, 20:80] = 255
    out = Geometry(crop=(20, 10, 60, 40)).to_input(img)
    assert out.min() == 255


def test_corners_undo_a_perspective_view():
    import cv2

    screen = np.zeros((224, 224, 3), np.uint8)
    screen[:, :112] = (255, 0, 0)  # left half red
    corners = np.float32([[300, 120], [700, 150], [690, 420], [310, 400]])
    src = np.float32([[0, 0], [223, 0], [223, 223], [0, 223]])
    m = cv2.getPerspectiveTransform(src, corners)
    frame = cv2.warpPerspective(screen, m, (960, 540))
    back = Geometry(corners=tuple(map(tuple, corners.tolist()))).to_input(frame)
    assert back[:, :100, 0].mean() > 240 and back[:, 124:, 0].mean() < 15


def test_bad_geometry_is_a_clear_error():
    with pytest.raises(AdbreakError, match="either"):
        Geometry(crop=(0, 0, 1, 1), corners=((0, 0), (1, 0), (1, 1), (0, 1)))
    with pytest.raises(AdbreakError, match="x,y,width,height"):
        Geometry.parse(crop="1,2,3")
    with pytest.raises(AdbreakError, match="eight numbers"):
        Geometry.parse(corners="1,2,3,4")
    with pytest.raises(AdbreakError, match="outside"):
        Geometry(crop=(0, 0, 500, 500)).to_input(np.zeros((100, 100, 3), np.uint8))


def test_geometry_round_trips_through_dict():
    g = Geometry.parse(corners="1,2,30,2,30,40,1,40")
    assert Geometry.from_dict(g.to_dict()) == g
    assert Geometry.from_dict(None).is_identity
