"""The counter chain: nested loop counters, as in Plasticine's PCU and PMU
(Prabhakar et al., ISCA 2017, sec. 3: "counter chains" generate loop indices
and the control events of the loop nest).

``CounterChain(n, width)`` holds ``n`` counters, counter 0 innermost. Per
counter the configuration is ``{start, stop, stride}`` (``width``-bit
unsigned, :func:`counter_layout`). Counter ``i`` takes the values ``start,
start + stride, ...`` and is at its *last* value when ``value + stride >=
stop`` (so a counter runs at least once, even if ``stop <= start``; a stride
of 0 with ``start < stop`` never ends: the compiler must not emit it). One
``step`` advances the innermost counter; a counter whose inner counters are
all at their last value advances too, and a counter at its last value wraps
back to ``start``. After the last iteration of the whole nest (``done``) a
step starts the nest over.

Ports:

* ``config`` (In): ``ArrayLayout(counter_layout(width), n)``.
* ``step`` (In): advance by one iteration at the next clock edge.
* ``clear`` (In): restart the nest (takes precedence over ``step``).
* ``values`` (Out): the counters' current values.
* ``wrap`` (Out, ``n`` bits): ``wrap[i]`` = counters ``0..i`` are all at
  their last value, i.e. the next step wraps counter ``i`` (and every inner
  one). ``wrap[i]`` marks the last iteration of a group at loop level
  ``i + 1``.
* ``first`` (Out, ``n`` bits): counters ``0..i`` all at their first value.
* ``first_next`` (Out, ``n`` bits): what ``first`` becomes after a step,
  from registers only (no ``step`` in it): a unit that needs ``first`` in
  its decision to step can register it ahead, loading it on each step.
* ``done`` (Out): ``wrap[n - 1]``: this is the last iteration of the nest.

Timing: the end test of counter ``i`` compares its offset from ``start``
with a limit ``stop - start - stride`` held in a register, and the "at its
last value" and "at its first value" flags are registers computed one step
ahead, so ``wrap``, ``first`` and ``done`` come straight from flops (no
adder or comparator between the chain and the logic that decides whether to
step); the values are registers too
(``start`` + offset, kept beside it). The price: the limits follow
``config`` one cycle late, so after a configuration change hold ``clear``
for two cycles before the first step.
:class:`CounterChainModel` is its bit-accurate Python model.
"""

from __future__ import annotations

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["counter_layout", "CounterChain", "CounterChainModel"]


def counter_layout(width: int) -> data.StructLayout:
    """Configuration of one counter: ``{start, stop, stride}``, ``width`` bits each."""
    return data.StructLayout({"start": width, "stop": width, "stride": width})


def _check(n, width):
    for name, v in (("n", n), ("width", width)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"CounterChain {name} must be an int, not {v!r}")
        if v < 1:
            raise ValueError(f"CounterChain {name} must be >= 1, got {v}")


class CounterChain(wiring.Component):
    """A chain of ``n`` nested ``width``-bit counters (see the module docstring)."""

    def __init__(self, n: int, width: int):
        _check(n, width)
        self.n = n
        self.width = width
        super().__init__({
            "config": In(data.ArrayLayout(counter_layout(width), n)),
            "step": In(1),
            "clear": In(1),
            "values": Out(data.ArrayLayout(width, n)),
            "wrap": Out(n),
            "first": Out(n),
            "first_next": Out(n),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n, w = self.n, self.width
        off = [Signal(w, name=f"off{i}") for i in range(n)]
        # lim = stop - start - stride: counter i is at its last value iff off >= lim
        lim = [Signal(signed(w + 2), name=f"lim{i}") for i in range(n)]
        last = Signal(n)                    # registered: off[i] >= lim[i]
        fst = Signal(n, init=(1 << n) - 1)  # registered: off[i] == 0
        val = [Signal(w, name=f"val{i}") for i in range(n)]     # registered: start + off
        # still[i]: counter i's stride is 0 (it never moves), registered like lim
        still = Signal(n)
        for i in range(n):
            cc = self.config[i]
            m.d.sync += [lim[i].eq(cc.stop - cc.start - cc.stride), still[i].eq(cc.stride == 0)]
            m.d.comb += self.values[i].eq(val[i])
        for i in range(n):
            m.d.comb += [
                self.wrap[i].eq(last[:i + 1].all()),
                self.first[i].eq(fst[:i + 1].all()),
            ]
        m.d.comb += self.done.eq(self.wrap[n - 1])
        fst_step = Signal(n)                # fst after a step
        for i in range(n):
            nxt = Signal(w + 1, name=f"next{i}")
            m.d.comb += nxt.eq(off[i] + self.config[i].stride)
            inner = self.wrap[i - 1] if i else Const(1, 1)
            # After a step that moves it, counter i is at offset 0 iff it wraps
            # (`last`) or its offset stays 0 (off = 0 and stride = 0): a step
            # that does not wrap has off < lim <= 2**w - 1 - stride, so
            # off + stride < 2**w never wraps the offset's bits to 0. No adder
            # lies on this flag's path.
            m.d.comb += [fst_step[i].eq(Mux(inner, last[i] | (fst[i] & still[i]), fst[i])),
                         self.first_next[i].eq(fst_step[:i + 1].all())]
            start = self.config[i].start
            restart = [off[i].eq(0), last[i].eq(lim[i] <= 0), val[i].eq(start)]
            with m.If(self.clear):
                m.d.sync += [*restart, fst[i].eq(1)]
            with m.Elif(self.step):
                m.d.sync += fst[i].eq(fst_step[i])
                with m.If(inner):
                    with m.If(last[i]):
                        m.d.sync += restart
                    with m.Else():
                        m.d.sync += [off[i].eq(nxt), last[i].eq(nxt >= lim[i]),
                                     val[i].eq(val[i] + self.config[i].stride)]
        return m


class CounterChainModel:
    """Bit-accurate model of :class:`CounterChain`. ``config`` is a list of
    ``{start, stop, stride}`` dicts (counter 0 first)."""

    def __init__(self, config, width: int = 16):
        self.width = width
        self.mask = (1 << width) - 1
        self.config = [dict(c) for c in config]
        self.off = [0] * len(self.config)

    @property
    def values(self) -> list:
        return [(c["start"] + o) & self.mask for c, o in zip(self.config, self.off)]

    def _last(self, i):
        c = self.config[i]
        return self.values[i] + c["stride"] >= c["stop"]

    @property
    def wrap(self) -> list:
        out, acc = [], True
        for i in range(len(self.config)):
            acc = acc and self._last(i)
            out.append(acc)
        return out

    @property
    def first(self) -> list:
        out, acc = [], True
        for o in self.off:
            acc = acc and o == 0
            out.append(acc)
        return out

    @property
    def first_next(self) -> list:
        """`first` after one step."""
        saved = list(self.off)
        self.step()
        out = self.first
        self.off = saved
        return out

    @property
    def done(self) -> bool:
        return self.wrap[-1]

    def step(self):
        wrap = self.wrap
        for i, c in enumerate(self.config):
            if i == 0 or wrap[i - 1]:
                self.off[i] = 0 if self._last(i) else (self.off[i] + c["stride"]) & self.mask

    def trips(self) -> int:
        """Iterations in one run of the nest (steps from the start to done, inclusive)."""
        total = 1
        for c in self.config:
            start, stop, stride = c["start"], c["stop"], c["stride"]
            if start + stride >= stop:
                t = 1
            elif stride == 0:
                raise ValueError(f"counter {c} never ends (stride 0 with start < stop)")
            else:
                # the smallest k with start + k*stride + stride >= stop, plus one
                t = -(-(stop - start - stride) // stride) + 1
            total *= t
        return total
