"""SymbiYosys proofs of the link layer and the crossbar (see formal_harness).

* ``prove``: k-induction; both the base case and the induction step must
  pass, for arbitrary input valid/payload and output ready.
* ``cover``: the interesting behaviours are reachable under the harness's
  assumptions, so the proofs are not vacuous.
* Negative controls: deliberately broken variants must FAIL with a real
  (base-case) counterexample on the property that describes the bug. They
  are run without the ``inv.*`` strengthening invariants, so it is the
  specification itself that catches them.

The formal tools are dependencies of Tessera: if they are missing these tests
fail (FormalToolMissing), they do not skip.
"""

import pytest
from amaranth import *

from tessera.hw import switch
from tessera.hw.links import Hop, StreamFIFO
from tessera.hw.switch import Crossbar
from tessera.sim import formal
from tessera.sim.formal import FormalToolMissing, run_sby

from .formal_harness import LAYOUT, CrossbarHarness, FIFOHarness, HopHarness

pytestmark = pytest.mark.formal

#: Properties that fail when a word is lost: the output shows the wrong
#: sequence number, or (crossbar) falls further behind its input than its
#: buffering allows.
LOSS = {"stream.sequence", "xbar.lag"}

#: k-induction depth (also the base-case BMC depth) of the proofs.
PROVE_DEPTH = 10
COVER_DEPTH = 12


def run(harness, tmp_path, *, mode="prove", depth=PROVE_DEPTH):
    result = run_sby(harness, tmp_path, ports=harness.ports, mode=mode, depth=depth,
                     timeout=240)
    print(f"{mode} depth={depth}: {result.status} in {result.seconds:.1f}s")
    return result


def explain(harness, result):
    names = harness.names_at(result.failed_lines())
    return (f"SymbiYosys returned {result.status} (work dir {result.workdir}); "
            f"failed properties: {sorted(names) or '?'}\n{result.summary()}")


def assert_proved(harness, tmp_path, **kwargs):
    result = run(harness, tmp_path, **kwargs)
    assert result.passed, explain(harness, result)
    return result


def assert_refuted(harness, tmp_path, expected: set[str]):
    """The proof must fail with a base-case counterexample on one of the
    `expected` properties; returns the names of those that failed there."""
    result = run(harness, tmp_path)
    assert result.status == "FAIL", explain(harness, result)
    base = harness.names_at(result.failed_lines("basecase"))
    assert base & expected, explain(harness, result)
    return base


def test_missing_tool_is_an_error(monkeypatch):
    monkeypatch.setitem(formal._TOOLS, "sby", "yowasp-sby-not-installed")
    with pytest.raises(FormalToolMissing, match="yowasp-sby-not-installed"):
        formal.sby_tools()


# -- proofs --------------------------------------------------------------------

def test_hop_prove(tmp_path):
    assert_proved(HopHarness(), tmp_path)


# StreamFIFO behaves as Amaranth's SyncFIFOBuffered: a ring of depth-1 entries plus an
# output register. At depth 1 it alternates (one word every other cycle). At
# depth 2 its one-entry ring is full while the first word moves to the output
# register, so it refuses a second word for a cycle although not full, and its
# ring's ready ignores a read in the same cycle: it too sustains only one word
# every other cycle. From depth 3 (the default is 4) it accepts whenever not
# full and sustains one transfer per cycle.
FIFO_CASES = [
    pytest.param(1, dict(throughput=False), id="depth1"),
    pytest.param(2, dict(throughput=False, ready_unless_full=False), id="depth2"),
    pytest.param(3, dict(), id="depth3"),
    pytest.param(4, dict(), id="depth4"),
]


@pytest.mark.parametrize("depth, spec", FIFO_CASES)
def test_input_fifo_prove(tmp_path, depth, spec):
    assert_proved(FIFOHarness(depth, **spec), tmp_path)


# StreamFIFO(registered=False) behaves as Amaranth's SyncFIFO (the PCU's vector
# inputs): its head is read from the ring combinationally, so from depth 2 it
# accepts whenever not full and sustains one transfer per cycle; at depth 1 it
# alternates.
@pytest.mark.parametrize("depth, spec", [
    pytest.param(1, dict(throughput=False), id="depth1"),
    pytest.param(2, dict(), id="depth2"),
    pytest.param(4, dict(), id="depth4"),
])
def test_comb_read_fifo_prove(tmp_path, depth, spec):
    fifo = StreamFIFO(LAYOUT, depth, registered=False)
    assert_proved(FIFOHarness(depth, fifo, **spec), tmp_path)


@pytest.mark.parametrize("n_in, n_out", [(3, 3), (1, 2)], ids=["3x3", "1x2"])
def test_crossbar_prove_any_config(tmp_path, n_in, n_out):
    # The configuration is an AnyConst: the solver picks any constant one
    # (multicast, unicast, disabled outputs, out-of-range selects).
    assert_proved(CrossbarHarness(n_in, n_out), tmp_path)


# -- non-vacuity ---------------------------------------------------------------

@pytest.mark.parametrize("make", [
    pytest.param(lambda: HopHarness(), id="hop"),
    pytest.param(lambda: FIFOHarness(4), id="fifo4"),
    pytest.param(lambda: CrossbarHarness(3, 3), id="crossbar3x3"),
])
def test_covers_reachable(tmp_path, make):
    assert_proved(make(), tmp_path, mode="cover", depth=COVER_DEPTH)


# -- negative controls -----------------------------------------------------------

class MutantHop(Hop):
    """Hop with one injected bug:

    * ``"forget"``: a word pushed while the hop holds one word and its output
      is stalled overwrites the head instead of going to the tail (one word
      is lost).
    * ``"comb_ready"``: ``i.ready`` is also raised by ``o.ready`` (the
      "ready pass-through" shortcut). Data stays correct, but ``i.ready`` is
      no longer registered: a combinational path spans the hop.
    """

    def __init__(self, layout, bug):
        super().__init__(layout)
        self.bug = bug

    def elaborate(self, platform):
        m = Module()
        head = Signal(self._layout)
        tail = Signal(self._layout)
        count = Signal(range(3))
        push = self.i.valid & self.i.ready
        pop = self.o.valid & self.o.ready
        ready = count != 2
        if self.bug == "comb_ready":
            ready = ready | self.o.ready
        m.d.comb += [
            self.o.valid.eq(count != 0),
            self.o.payload.eq(head),
            self.i.ready.eq(ready),
        ]
        with m.If(push & ~pop):
            m.d.sync += count.eq(count + 1)
            if self.bug == "forget":
                m.d.sync += head.eq(self.i.payload)
            else:
                with m.If(count == 0):
                    m.d.sync += head.eq(self.i.payload)
                with m.Else():
                    m.d.sync += tail.eq(self.i.payload)
        with m.Elif(pop & ~push):
            m.d.sync += [count.eq(count - 1), head.eq(tail)]
        with m.Elif(pop & push):
            with m.If(count == 1):
                m.d.sync += head.eq(self.i.payload)
            with m.Else():
                m.d.sync += [head.eq(tail), tail.eq(self.i.payload)]
        return m


class LazyForkCrossbar(Crossbar):
    """Crossbar whose inputs are consumed as soon as *any* selecting output
    takes the word (OR instead of AND): the other multicast outputs lose it."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        hops = [getattr(m.submodules, f"hop{k}") for k in range(self._n_out)]
        for j in range(self._n_in):
            takers = [self.config[k].en & (self.config[k].sel == j) & hops[k].i.ready
                      for k in range(self._n_out)]
            # The last comb assignment wins: this overrides the AND of the fork.
            m.d.comb += self.i[j].ready.eq(Cat(*takers).any())
        return m


def test_negative_hop_losing_a_word(tmp_path):
    harness = HopHarness(MutantHop(LAYOUT, "forget"), strengthen=False)
    assert_refuted(harness, tmp_path, LOSS)


def test_negative_hop_combinational_ready(tmp_path):
    harness = HopHarness(MutantHop(LAYOUT, "comb_ready"), strengthen=False)
    failed = assert_refuted(harness, tmp_path, {"hop.ready_registered"})
    # The data path of this mutant is right: only the timing property fails.
    assert failed == {"hop.ready_registered"}


def test_negative_crossbar_lazy_fork(tmp_path):
    harness = CrossbarHarness(2, 2, crossbar=LazyForkCrossbar(LAYOUT, 2, 2), strengthen=False)
    assert_refuted(harness, tmp_path, LOSS)


def test_negative_crossbar_with_lossy_hops(tmp_path, monkeypatch):
    # Crossbar instantiates `Hop` from tessera.hw.switch at elaboration.
    monkeypatch.setattr(switch, "Hop", lambda layout: MutantHop(layout, "forget"))
    harness = CrossbarHarness(2, 2, strengthen=False)
    assert_refuted(harness, tmp_path, LOSS)
