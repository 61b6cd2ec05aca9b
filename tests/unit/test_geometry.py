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


def _photo(h: int, w: int) -> np.ndarray:
    """A natural picture at ``w`` x ``h``: skimage's astronaut, with fine detail."""
    import cv2
    from skimage import data

    return cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("size", [(540, 960), (720, 1280), (1080, 1920), (480, 640), (301, 451), (150, 200)])
def test_halve_linear_stays_close_to_area_averaging(size):
    import cv2

    from edge.geometry import RESIZE_AREA, resize_input

    img = _photo(*size)
    area = resize_input(img, method=RESIZE_AREA)
    assert np.array_equal(area, cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA))
    fast = resize_input(img)
    assert fast.shape == (224, 224, 3) and fast.dtype == np.uint8
    diff = np.abs(fast.astype(int) - area.astype(int))
    assert diff.mean() < 1.5, diff.mean()


def test_halve_linear_averages_every_pixel_not_every_other():
    """A one-pixel checkerboard is grey after the resize: the 2x2 steps average it away. Bilinear sampling straight
    from 960 wide would alias it into stripes."""
    from edge.geometry import resize_input

    img = np.zeros((540, 960, 3), np.uint8)
    img[::2, ::2] = img[1::2, 1::2] = 255
    out = resize_input(img)
    assert abs(out.mean() - 127.5) < 1 and out.std() < 2


def test_halve_linear_drops_an_odd_last_row_and_column():
    from edge.geometry import resize_input

    img = np.zeros((541, 961, 3), np.uint8)
    img[540, :] = img[:, 960] = 255  # the dropped row and column only
    assert resize_input(img).max() == 0


def test_unknown_resize_is_a_clear_error():
    from edge.geometry import resize_input, resize_name

    with pytest.raises(AdbreakError, match="unknown resize 'nearest'"):
        resize_input(np.zeros((300, 300, 3), np.uint8), method="nearest")
    with pytest.raises(AdbreakError, match="unknown resize 'lanczos' in the model bundle"):
        resize_name("lanczos")


def test_bundles_made_before_the_resize_was_named_keep_area():
    from edge.bundle import Preprocessing

    old = {"input_size": 224, "resize": "cv2.INTER_AREA, whole frame, no centre crop", "fps": 5.0}
    assert Preprocessing.from_dict(old).resize == "area"
    assert Preprocessing.from_dict({"input_size": 224}).resize == "area"
    new = Preprocessing()
    assert new.resize == "halve-linear"
    assert Preprocessing.from_dict(new.to_dict()) == new
