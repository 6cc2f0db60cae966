"""Rule lu2025_eeg_epochs: THINGS-EEG2 test EEG (channels, 0-200 ms, every trial) -> epochs npz
for decoding_rdms (brainalign.io.meg array format: images x trials x channels x times)."""

from pathlib import Path

from _bootstrap import rule_log
from brainalign.io.meg import MEGData, write_meg_array
from brainalign.io.things_eeg2 import load_things_eeg2

sm = snakemake
with rule_log(sm):
    eeg = sm.params.eeg
    channels = None if eeg["channels"] == "all" else eeg["channels"]
    root = Path(sm.input.metadata).parent
    d = load_things_eeg2(root, int(sm.wildcards.subject), split="test", channels=channels,
                         tmin=eeg["tmin"], tmax=eeg["tmax"], average_trials=False)
    print(f"sub-{sm.wildcards.subject}: {d['data'].shape} (images, trials, channels, times), "
          f"{d['times'][0]:.3f}..{d['times'][-1]:.3f} s")
    write_meg_array(sm.output.epochs, MEGData(data=d["data"], times=d["times"],
                                              ch_names=list(d["ch_names"]), conditions=d["concepts"]))
