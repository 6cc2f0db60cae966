# Helpers, start-up checks and registration for workflow/rules/kuzovkin2018.smk (functions and
# checks only: snakemake --lint keeps rules and functions in separate files).

from brainalign.kuzovkin2018 import check_config as check_kuzovkin_config  # noqa: E402

KUZ = "kuzovkin2018"
KUZ_STIMSET = "kuzovkin2018"
KUZ_DEMO_ROOT = "resources/demo/kuzovkin2018"
KUZ_DEMO = cfg("demo", "enabled") and cfg(KUZ, "enabled")
KUZ_MODELS = list(cfg(KUZ, "models"))
KUZ_RANDOM_GTNET = (
    "gtnet_random"  # gtnet's seeded random-weights control (kuzovkin_random_net)
)
KUZ_FILES = {}  # see brainalign.kuzovkin2018.check_config


def kuz_results(*parts):
    return results(KUZ, *parts)


def kuz_rdms(model="{model}"):
    return kuz_results("rdms", f"{model}.h5")


def kuz_tests(band="{band}", window="{window}"):
    return kuz_results("tests", f"{band}_{window}.csv")


def kuz_table(name):
    return kuz_results("tables", name)


def kuz_figure(name):
    return kuz_results("figures", name)


def kuz_random_net():
    return kuz_results("models", f"{KUZ_RANDOM_GTNET}.pt")


def kuz_stimuli():
    return KUZ_FILES["stimuli"]


def kuz_all_subject_files():
    return [p for files in KUZ_FILES["files"].values() for p in files.values()]


def kuz_subject_files(wildcards):
    return list(KUZ_FILES["files"][(wildcards.band, wildcards.window)].values())


def kuz_layers(wildcards):
    return cfg(KUZ, "layers").get(wildcards.model, "all")


def kuz_folder_template(wildcards):
    """The folder template as a function (its {band} is no wildcard of the demo rule)."""
    return cfg(KUZ, "folder_template")


def kuz_truth():
    return str(Path(KUZ_DEMO_ROOT, "truth.json")) if KUZ_DEMO else []


def kuz_band_windows():
    return [(b, w) for b in KUZ_FILES["bands"] for w in KUZ_FILES["windows"]]


def kuz_permutation_runtime():
    """Minutes for one band x window: about 1.3 s per 1e5 probe x layer x permutation x
    (n_stimuli / 250)^2 on one core (the bench: 100 probes x 9 layers x 10,000 permutations in
    120 s), for ~100 probes per subject and 10 layers per model, at least 10."""
    p = cfg(KUZ, "permutation")
    work = len(KUZ_FILES["subjects"]) * 100 * 10 * len(KUZ_MODELS) * p["n_permutations"]
    scale = (KUZ_FILES["n_stimuli"] / 250) ** 2
    return max(10, int(work * scale * 1.3e-5 / 60 / max(1, p["threads"])) + 1)


def kuzovkin_outputs():
    outs = [kuz_table(f"{t}.csv") for t in ("alignment", "mapping", "layer_fractions")]
    outs += [kuz_figure(f"mapping_{m}.png") for m in KUZ_MODELS]
    outs += [kuz_figure("rho_align.png"), kuz_figure("layer_fractions.png")]
    return outs


def kuz_trained_checkpoints():
    return (
        {KUZ_RANDOM_GTNET: kuz_random_net()} if KUZ_RANDOM_GTNET in KUZ_MODELS else {}
    )


if cfg(KUZ, "enabled"):
    # start-up checks: fail before any job runs, naming the config key
    check_models(
        MODEL_TABLE,
        [m for m in KUZ_MODELS if m not in kuz_trained_checkpoints()],
        checkpoint_dir=cfg("models", "checkpoint_dir"),
    )
    KUZ_FILES = check_kuzovkin_config(
        config[KUZ], demo=KUZ_DEMO, demo_root=KUZ_DEMO_ROOT
    )
    register_paper(KUZ, kuzovkin_outputs, trained_checkpoints=kuz_trained_checkpoints())
