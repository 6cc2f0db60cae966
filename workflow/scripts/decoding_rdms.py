"""Rule decoding_rdms: pairwise decoding accuracy per time point (Cichy et al. 2016, SPEC §2)."""

from _bootstrap import rule_log
from brainalign.artifacts import write_decoding_rdms
from brainalign.decoding import pairwise_decoding_rdm
from brainalign.io.meg import read_meg_array

sm = snakemake
with rule_log(sm):
    opts = sm.params.decoding
    meg = read_meg_array(sm.input.epochs)
    print(f"{sm.input.epochs}: {meg.data.shape[0]} conditions x {meg.data.shape[1]} trials x "
          f"{meg.data.shape[2]} channels x {meg.data.shape[3]} times; {opts}")
    accuracy = pairwise_decoding_rdm(
        meg.data.astype("float32"), trials_per_group=opts["trials_per_group"],
        n_permutations=opts["n_permutations"], classifier=opts["classifier"],
        seed=sm.params.seed, device=opts["device"], progress=True, n_jobs=sm.threads,
    )
    write_decoding_rdms(
        sm.output.rdms, dataset=sm.wildcards.dataset, subject=sm.wildcards.subject,
        accuracy=accuracy, times=meg.times, conditions=meg.conditions,
        classifier=opts["classifier"], trials_per_group=opts["trials_per_group"],
        n_permutations=opts["n_permutations"], seed=sm.params.seed,
    )
