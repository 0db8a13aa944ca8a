"""Go's ``container/heap`` and ``sort.Sort``, replayed swap for swap on a Python list.

Prometheus's ``topk`` and ``bottomk`` keep their candidates in a ``container/heap`` and, at the end,
order them with ``sort.Sort``. Neither is stable, and the comparison they use says NaN is less than
everything, itself included. So when values tie (or several are NaN), which series survive and the
order they come out in are decided by the exact sequence of swaps these algorithms make. The engine
finds ties with numpy and replays only the tied groups here; everything else never comes this way.

``sort.Sort`` is the pattern-defeating quicksort of Go 1.19, the Go that Prometheus 2.42 was built
with (insertion sort up to 12 elements, median-of-three or Tukey's ninther pivots, heapsort after too
many bad pivots, a deterministic xorshift to break patterns). ``items`` are lists of
``(value, payload)`` pairs and ``less`` compares two values, as a Go ``Less(i, j)`` would.
"""

from __future__ import annotations

from collections.abc import Callable

Less = Callable[[float, float], bool]
Items = list  # [(value, payload), ...]

_U64 = (1 << 64) - 1
_MAX_INSERTION = 12
_SHORTEST_NINTHER = 50
_MAX_SWAPS = 4 * 3
_MAX_STEPS = 5
_SHORTEST_SHIFTING = 50
_UNKNOWN, _INCREASING, _DECREASING = 0, 1, 2


# -- container/heap -----------------------------------------------------------------------------


def heap_push(items: Items, item: tuple, less: Less) -> None:
    """``heap.Push``: append, then move the new element up."""
    items.append(item)
    j = len(items) - 1
    while j > 0:  # Go's (j-1)/2 truncates, so j == 0 is its own parent and stops the loop.
        i = (j - 1) // 2
        if not less(items[j][0], items[i][0]):
            break
        items[i], items[j] = items[j], items[i]
        j = i


def heap_pop(items: Items, less: Less) -> tuple:
    """``heap.Pop``: swap the root with the last element, move the new root down, remove the last."""
    n = len(items) - 1
    items[0], items[n] = items[n], items[0]
    _heap_down(items, 0, n, less)
    return items.pop()


def _heap_down(items: Items, i: int, n: int, less: Less) -> None:
    while True:
        j = 2 * i + 1
        if j >= n:
            return
        if j + 1 < n and less(items[j + 1][0], items[j][0]):
            j += 1
        if not less(items[j][0], items[i][0]):
            return
        items[i], items[j] = items[j], items[i]
        i = j


# -- sort.Sort ----------------------------------------------------------------------------------


def sort_sort(items: Items, less: Less) -> None:
    """``sort.Sort`` of ``items`` in place by ``less``."""
    n = len(items)
    if n > 1:
        _Sorter(items, less).pdqsort(0, n, n.bit_length())


class _Sorter:
    def __init__(self, items: Items, less: Less) -> None:
        self.items = items
        self.less_values = less

    def less(self, i: int, j: int) -> bool:
        return self.less_values(self.items[i][0], self.items[j][0])

    def swap(self, i: int, j: int) -> None:
        items = self.items
        items[i], items[j] = items[j], items[i]

    def insertion_sort(self, a: int, b: int) -> None:
        for i in range(a + 1, b):
            j = i
            while j > a and self.less(j, j - 1):
                self.swap(j, j - 1)
                j -= 1

    def sift_down(self, lo: int, hi: int, first: int) -> None:
        root = lo
        while True:
            child = 2 * root + 1
            if child >= hi:
                return
            if child + 1 < hi and self.less(first + child, first + child + 1):
                child += 1
            if not self.less(first + root, first + child):
                return
            self.swap(first + root, first + child)
            root = child

    def heap_sort(self, a: int, b: int) -> None:
        first, hi = a, b - a
        for i in range((hi - 1) // 2, -1, -1):
            self.sift_down(i, hi, first)
        for i in range(hi - 1, -1, -1):
            self.swap(first, first + i)
            self.sift_down(0, i, first)

    def pdqsort(self, a: int, b: int, limit: int) -> None:
        was_balanced = True
        was_partitioned = True
        while True:
            length = b - a
            if length <= _MAX_INSERTION:
                self.insertion_sort(a, b)
                return
            if limit == 0:
                self.heap_sort(a, b)
                return
            if not was_balanced:
                self.break_patterns(a, b)
                limit -= 1
            pivot, hint = self.choose_pivot(a, b)
            if hint == _DECREASING:
                self.reverse_range(a, b)
                pivot = (b - 1) - (pivot - a)
                hint = _INCREASING
            if was_balanced and was_partitioned and hint == _INCREASING and self.partial_insertion_sort(a, b):
                return
            if a > 0 and not self.less(a - 1, pivot):
                a = self.partition_equal(a, b, pivot)
                continue
            mid, was_partitioned = self.partition(a, b, pivot)
            left, right = mid - a, b - mid
            threshold = length // 8
            if left < right:
                was_balanced = left >= threshold
                self.pdqsort(a, mid, limit)
                a = mid + 1
            else:
                was_balanced = right >= threshold
                self.pdqsort(mid + 1, b, limit)
                b = mid

    def partition(self, a: int, b: int, pivot: int) -> tuple[int, bool]:
        self.swap(a, pivot)
        i, j = a + 1, b - 1
        while i <= j and self.less(i, a):
            i += 1
        while i <= j and not self.less(j, a):
            j -= 1
        if i > j:
            self.swap(j, a)
            return j, True
        self.swap(i, j)
        i += 1
        j -= 1
        while True:
            while i <= j and self.less(i, a):
                i += 1
            while i <= j and not self.less(j, a):
                j -= 1
            if i > j:
                break
            self.swap(i, j)
            i += 1
            j -= 1
        self.swap(j, a)
        return j, False

    def partition_equal(self, a: int, b: int, pivot: int) -> int:
        self.swap(a, pivot)
        i, j = a + 1, b - 1
        while True:
            while i <= j and not self.less(a, i):
                i += 1
            while i <= j and self.less(a, j):
                j -= 1
            if i > j:
                return i
            self.swap(i, j)
            i += 1
            j -= 1

    def partial_insertion_sort(self, a: int, b: int) -> bool:
        i = a + 1
        for _ in range(_MAX_STEPS):
            while i < b and not self.less(i, i - 1):
                i += 1
            if i == b:
                return True
            if b - a < _SHORTEST_SHIFTING:
                return False
            self.swap(i, i - 1)
            if i - a >= 2:  # Shift the smaller one to the left.
                j = i - 1
                while j >= 1 and self.less(j, j - 1):
                    self.swap(j, j - 1)
                    j -= 1
            if b - i >= 2:  # Shift the greater one to the right.
                j = i + 1
                while j < b and self.less(j, j - 1):
                    self.swap(j, j - 1)
                    j += 1
        return False

    def break_patterns(self, a: int, b: int) -> None:
        length = b - a
        if length < 8:
            return
        state = length
        modulus = 1 << length.bit_length()
        middle = a + (length // 4) * 2
        for idx in range(middle - 1, middle + 2):
            # Go 1.19's xorshift (13, 17, 5) on a uint64.
            state ^= (state << 13) & _U64
            state ^= state >> 17
            state ^= (state << 5) & _U64
            other = state & (modulus - 1)
            if other >= length:
                other -= length
            self.swap(idx, a + other)

    def choose_pivot(self, a: int, b: int) -> tuple[int, int]:
        length = b - a
        swaps = [0]
        i, j, k = a + length // 4, a + length // 4 * 2, a + length // 4 * 3
        if length >= 8:
            if length >= _SHORTEST_NINTHER:
                i = self.median(i - 1, i, i + 1, swaps)
                j = self.median(j - 1, j, j + 1, swaps)
                k = self.median(k - 1, k, k + 1, swaps)
            j = self.median(i, j, k, swaps)
        if swaps[0] == 0:
            return j, _INCREASING
        if swaps[0] == _MAX_SWAPS:
            return j, _DECREASING
        return j, _UNKNOWN

    def median(self, a: int, b: int, c: int, swaps: list[int]) -> int:
        a, b = self.order2(a, b, swaps)
        b, c = self.order2(b, c, swaps)
        a, b = self.order2(a, b, swaps)
        return b

    def order2(self, a: int, b: int, swaps: list[int]) -> tuple[int, int]:
        if self.less(b, a):
            swaps[0] += 1
            return b, a
        return a, b

    def reverse_range(self, a: int, b: int) -> None:
        i, j = a, b - 1
        while i < j:
            self.swap(i, j)
            i += 1
            j -= 1


__all__ = ["heap_pop", "heap_push", "sort_sort"]
