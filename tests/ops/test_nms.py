import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multibox.ops import box_iou, greedy_nms
from tests.ops.reference import sequential_nms


def _random_case(seed, n, k, num_groups, spread=0.3):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, k, 2, generator=g)
    boxes = torch.cat([xy, xy + torch.rand(n, k, 2, generator=g) * spread], dim=-1)
    groups = torch.randint(0, num_groups, (n, k), generator=g)
    active = torch.rand(n, k, generator=g) > 0.15
    return boxes, groups, active


def test_hand_computed_chain():
    # 0 suppresses 1 (IoU .81); 1 would suppress 2 but is suppressed itself, so 2 survives; 3: other class.
    boxes = torch.tensor(
        [[[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.9, 0.9], [0.0, 0.0, 0.7, 0.7], [0.0, 0.0, 1.0, 1.0]]]
    )
    keep = greedy_nms(boxes, torch.tensor([[0, 0, 0, 1]]), torch.ones(1, 4, dtype=torch.bool), 0.6)
    assert keep.tolist() == [[True, False, True, True]]
    keep = greedy_nms(boxes, torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 4, dtype=torch.bool), 0.6)
    assert keep.tolist() == [[True, False, True, False]]


def test_threshold_is_inclusive():
    boxes = torch.tensor([[[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.5]]])  # IoU exactly .5
    active = torch.ones(1, 2, dtype=torch.bool)
    groups = torch.zeros(1, 2, dtype=torch.long)
    assert greedy_nms(boxes, groups, active, 0.5).tolist() == [[True, False]]
    assert greedy_nms(boxes, groups, active, 0.50001).tolist() == [[True, True]]


def test_inactive_rows_neither_suppress_nor_survive():
    boxes = torch.tensor([[[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]])
    keep = greedy_nms(boxes, torch.zeros(1, 2, dtype=torch.long), torch.tensor([[False, True]]), 0.5)
    assert keep.tolist() == [[False, True]]


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(1, 3),
    st.integers(1, 60),
    st.integers(1, 6),
    st.sampled_from([0.3, 0.45, 0.5, 0.7]),
)
def test_matches_the_sequential_loop(seed, n, k, num_groups, threshold):
    boxes, groups, active = _random_case(seed, n, k, num_groups)
    keep = greedy_nms(boxes, groups, active, threshold)
    for i in range(n):
        expected = sequential_nms(boxes[i].numpy(), groups[i].numpy(), active[i].numpy(), threshold)
        assert keep[i].tolist() == expected.tolist()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 200), st.integers(1, 25))
def test_no_two_kept_rows_of_a_group_overlap(seed, k, num_groups):
    boxes, groups, active = _random_case(seed, 2, k, num_groups, spread=0.6)
    keep = greedy_nms(boxes, groups, active, 0.45)
    assert not bool((keep & ~active).any())
    for i in range(2):
        idx = keep[i].nonzero()[:, 0]
        iou = box_iou(boxes[i, idx], boxes[i, idx])
        same = groups[i, idx].unsqueeze(0) == groups[i, idx].unsqueeze(1)
        off_diagonal = ~torch.eye(len(idx), dtype=torch.bool)
        assert not bool(((iou >= 0.45) & same & off_diagonal).any())
        # Every suppressed active row overlaps an earlier kept row of its group.
        for j in (active[i] & ~keep[i]).nonzero()[:, 0].tolist():
            earlier = idx[idx < j]
            earlier = earlier[groups[i, earlier] == groups[i, j]]
            assert bool((box_iou(boxes[i, j : j + 1], boxes[i, earlier]) >= 0.45).any())


def test_group_sorted_and_blocked_paths_agree_with_the_loop():
    # One group -> pairs block by block over all rows; several -> rows sorted by group, pairs per group.
    for num_groups in (1, 2, 40):
        boxes, groups, active = _random_case(7, 4, 300, num_groups, spread=0.5)
        keep = greedy_nms(boxes, groups, active, 0.4)
        for i in range(4):
            expected = sequential_nms(boxes[i].numpy(), groups[i].numpy(), active[i].numpy(), 0.4)
            assert np.array_equal(keep[i].numpy(), expected)


def test_a_suppression_chain_as_long_as_the_input_is_resolved_greedily():
    # Boxes 0.03 wide, 0.01 apart: IoU 0.5 with each neighbour, 0.2 two apart. Greedily every other box
    # survives; the fixed point needs one round per link of the chain.
    k = 150
    left = torch.arange(k, dtype=torch.float32) * 0.01
    one_line = torch.stack([left, torch.zeros(k), left + 0.03, torch.ones(k)], dim=1)
    boxes = torch.stack([one_line, one_line])
    groups = torch.stack([torch.zeros(k, dtype=torch.long), torch.arange(k) // 100])  # 1 group; 2 groups
    keep = greedy_nms(boxes, groups, torch.ones(2, k, dtype=torch.bool), 0.45)
    assert keep[0].tolist() == [i % 2 == 0 for i in range(k)]
    assert keep[1].tolist() == [i % 2 == 0 for i in range(100)] + [i % 2 == 0 for i in range(k - 100)]


def test_inputs_that_require_grad_are_accepted():
    boxes, groups, active = _random_case(3, 1, 20, 2)
    keep = greedy_nms(boxes.requires_grad_(True), groups, active, 0.5)
    assert keep.tolist() == greedy_nms(boxes.detach(), groups, active, 0.5).tolist()


def test_window_keeps_pairs_exactly_at_the_threshold():
    # Box B inside A = [0, 0, 1, 1], right-aligned: IoU = width of B, the tightest case of the x-window
    # bound (IoU <= x-overlap / width of A). B's left edge steps through the ulps around 1 - threshold.
    for threshold in (0.3, 0.45, 0.5, 0.7):
        edge = torch.tensor(1 - threshold, dtype=torch.float32)
        lefts = [edge]
        for _ in range(4):
            lefts = (
                [torch.nextafter(lefts[0], torch.tensor(0.0))]
                + lefts
                + [torch.nextafter(lefts[-1], torch.tensor(1.0))]
            )
        rows, groups = [], []
        for group, left in enumerate(lefts):  # one group per pair: the window path, not the dense blocks
            rows += [[0.0, 0.0, 1.0, 1.0], [float(left), 0.0, 1.0, 1.0]]
            groups += [group, group]
        boxes = torch.tensor([rows])
        group_ids = torch.tensor([groups])
        active = torch.ones_like(group_ids, dtype=torch.bool)
        keep = greedy_nms(boxes, group_ids, active, threshold)
        expected = sequential_nms(boxes[0].numpy(), group_ids[0].numpy(), active[0].numpy(), threshold)
        assert keep[0].tolist() == expected.tolist()
        assert not all(expected[1::2]) and any(expected[1::2])  # both outcomes occur around the edge
