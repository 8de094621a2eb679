"""The compute ledger a run carries in its checkpoints (`engines.train.ledger`)."""
from engines.train.ledger import ComputeLedger


def test_a_checkpoint_without_a_ledger_counts_from_its_step():
    ledger = ComputeLedger.from_checkpoint({"step": 2000})
    assert ledger.since_step == 2000 and ledger.canvases == 0 and ledger.seconds == {}
    assert ComputeLedger.from_checkpoint(None).since_step == 0


def test_the_ledger_adds_stretches_by_device_and_survives_a_checkpoint():
    ledger = ComputeLedger(since_step=2000)
    ledger.add("cpu", 3600.0, 16, 16)
    ledger.add("cpu", 1800.0, 32, 32)
    ledger.add("cuda", 360.0, 160, 160)
    again = ComputeLedger.from_checkpoint({"ledger": ledger.as_dict(), "step": 9999})
    assert again == ledger  # the checkpoint's own since_step, not the resume step
    assert again.seconds == {"cpu": 5400.0, "cuda": 360.0} and (again.canvases, again.views) == (208, 208)
    assert again.summary() == "cpu 1.50 h, cuda 0.10 h, 208 canvases + 208 views since step 2,000"
