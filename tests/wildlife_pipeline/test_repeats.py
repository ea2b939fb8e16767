"""Repeat detection elimination: the pure rule, per folder and against a camera's history."""

from __future__ import annotations

from sleuth.pipelines.wildlife.repeats import RepeatRule, camera_of, flag_against_history, flag_repeats

SIGN = [0.60, 0.10, 0.05, 0.08]
LOGO = [0.85, 0.92, 0.14, 0.08]


def _jitter(box: list[float], k: int) -> list[float]:
    d = 0.004 * ((k % 3) - 1)
    return [box[0] + d, box[1] - d, box[2], box[3]]


def test_a_box_recurring_in_ten_images_is_flagged() -> None:
    images = [[(_jitter(SIGN, k), 0.5), ([0.1 + 0.07 * k, 0.5, 0.1, 0.1], 0.9)] for k in range(10)]
    flags = flag_repeats(images)
    assert all(f == [True, False] for f in flags)  # the sign, not the animal walking across
    assert flag_repeats(images[:9]) == [[False, False]] * 9  # 9 images: not yet
    assert flag_repeats(images, RepeatRule(min_occurrences=5))[0] == [True, False]


def test_low_confidence_and_large_boxes_are_not_counted() -> None:
    weak = [[(SIGN, 0.05)] for _ in range(12)]
    assert flag_repeats(weak) == [[False]] * 12
    big = [[([0.1, 0.1, 0.6, 0.6], 0.9)] for _ in range(12)]  # an animal filling the frame recurs by nature
    assert flag_repeats(big) == [[False]] * 12
    # weak boxes in other images do not count towards a strong one
    mixed = [[(SIGN, 0.9)]] + [[(SIGN, 0.05)] for _ in range(11)]
    assert flag_repeats(mixed)[0] == [False]


def test_history_is_causal() -> None:
    history = [[_jitter(LOGO, k)] for k in range(8)]
    assert flag_against_history([(LOGO, 0.8), ([0.2, 0.2, 0.1, 0.1], 0.8)], history) == [False, False]
    history.append(LOGO)
    assert flag_against_history([(LOGO, 0.8), ([0.2, 0.2, 0.1, 0.1], 0.8)], history) == [True, False]
    assert flag_against_history([], history) == []


def test_camera_of() -> None:
    assert camera_of("cam-07/2024/IMG_0001.JPG", None) == "ref:cam-07"
    assert camera_of("cam-07/IMG_0001.JPG", "H500X") == "ref:cam-07"  # the reference wins
    assert camera_of("IMG_0001.JPG", " H500X ") == "serial:H500X"
    assert camera_of("/IMG_0001.JPG", None) is None
    assert camera_of(None, None) is None
