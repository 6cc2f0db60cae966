"""Rule kuzovkin_random_net: the random-weights control of gtnet (same architecture, another seed),
saved as a brainalign network file that extract_features loads as model gtnet_random."""

from _bootstrap import rule_log
from brainalign.models.gtnet import GTNET_SEED, gtnet
from brainalign.training import save_network
from brainalign.utils import make_rng

sm = snakemake
with rule_log(sm):
    seed = int(make_rng(sm.params.seed).integers(2**31))
    if seed == GTNET_SEED:  # pragma: no cover - astronomically unlikely
        seed += 1
    save_network(sm.output.model, gtnet(seed=seed), architecture="gtnet", arch_kwargs={"seed": seed})
    print(f"gtnet_random: gtnet with seed {seed} (the ground truth uses {GTNET_SEED})")
