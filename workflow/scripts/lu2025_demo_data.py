"""Rule lu2025_demo_data: the synthetic Lu 2025 dataset (brainalign.lu2025.write_lu2025_demo)."""

from _bootstrap import rule_log
from brainalign.lu2025 import write_lu2025_demo

sm = snakemake
with rule_log(sm):
    lu = sm.params.lu
    demo = lu["demo"]
    paths = {
        "shen_root": lu["shen"]["root"],
        "shen_train": lu["shen"]["train_file"],
        "shen_test": lu["shen"]["test_files"],
        "horikawa_root": lu["horikawa"]["root"],
        "horikawa_file": lu["horikawa"]["file"],
        "eeg_root": lu["things_eeg2"]["root"],
        "image_dir": lu["shen"]["image_dir"],
        "dims_weights": lu["dimensions"]["weights"],
        "dims_concepts": lu["dimensions"]["concepts"],
        "truth": sm.output.truth,
    }
    missing = {"natural", "artificial", "letter"} - set(lu["shen"]["test_files"])
    if missing:
        raise ValueError(f"config key lu2025.shen.test_files: the demo writes natural, artificial and "
                         f"letter sets; {sorted(missing)} missing.")
    truth = write_lu2025_demo(
        paths,
        shen_subjects=lu["shen"]["subjects"],
        horikawa_subjects=lu["horikawa"]["subjects"],
        eeg_subjects=lu["things_eeg2"]["subjects"],
        n_train=demo["n_train"], n_test=demo["n_test"], n_artificial=demo["n_artificial"],
        n_letters=demo["n_letters"], n_reps_train=demo["n_reps_train"], n_reps_test=demo["n_reps_test"],
        n_voxels=demo["n_voxels"], noise_sd=demo["noise_sd"], n_eeg_images=demo["n_eeg_images"],
        n_eeg_reps=demo["n_eeg_reps"], eeg_noise_sd=demo["eeg_noise_sd"],
        image_size=demo["image_size"], seed=sm.params.seed,
    )
    print(f"Lu 2025 demo written: {truth}")
