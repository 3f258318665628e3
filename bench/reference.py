"""The reference: micapipe_anonymize's recipe, redone with ANTsPy on the same data and atlas.

micapipe (MICA-MNI/micapipe, functions/micapipe_anonymize) runs, per session:
  1. antsRegistrationSyN.sh -t a -p f: T1w -> atlas template (rigid + affine, MI, 8x4x2x1),
     at the template's own resolution;
  2. deface: face ROI -> T1w through the inverse affine (GenericLabel), T1w x (1 - ROI);
  3. reface: brainNeck (GenericLabel) and atlas face (linear) -> T1w, face rescaled to
     [0, max T1w], brainNeck x T1w + face;
  4. warpface: brainNeck dilated by 6 voxels, inverted = metric mask;
     antsRegistrationSyNQuick.sh -t s -x mask: T1w -> refaced T1w (rigid + affine + SyN, MI);
     the warp field multiplied by the mask;
  5. every other anatomical image: antsRegistrationSyN.sh -t a -p d to the T1w, then its deface
     (ROI pulled through the inverse), reface (face and brainNeck pulled, face rescaled to the
     image's range) and warpface (antsApplyTransforms -n NearestNeighbor through
     [img->T1w,1] [face affine,1] face warp, face affine, img->T1w).
ANTsPy's ``antsRegistrationSyN[a]`` / ``antsRegistrationSyNQuick[s]`` transforms issue the same
antsRegistration stages as those scripts (iterations, shrink factors, smoothing, metrics).
Two differences, both making the reference faster than micapipe itself: our atlas (~1 mm) is
coarser than MICs60 (0.8 mm), and micapipe also registers the T1w to itself in step 5 (its loop
covers every anat image); we skip that self-registration.

    .venv/bin/python bench/reference.py --bids DIR --subject A --atlas ATLAS --threads 2 --json out.json
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Stages, cpu_seconds, peak_rss_mb, session_images, session_parser, set_threads, short_name, versions, write_json  # noqa: E402

METHODS = ("deface", "reface", "warpface")
DILATE_VOXELS = 6  # micapipe's -dilate default (3dmask_tool -dilate_input 6)


def rescale(image, lo: float, hi: float):
    """ImageMath RescaleImage: linear map of the image's range onto [lo, hi]."""
    data = image.numpy()
    span = float(data.max() - data.min()) or 1.0
    return image.new_image_like(((data - data.min()) / span * (hi - lo) + lo).astype("float32"))


def run(args, stages: Stages, tmp: str) -> dict:
    import ants

    atlas = Path(args.atlas)
    images = session_images(args.bids, args.subject)
    out = Path(tmp)

    def write(image, name: str) -> None:
        with stages.stage("write"):
            ants.image_write(image, str(out / f"{name}.nii.gz"))

    with stages.stage("load"):
        t1 = ants.image_read(images["t1w"])
        template = ants.image_read(str(atlas / "tpl-micanon_T1w.nii.gz"))
        face_roi = ants.image_read(str(atlas / "tpl-micanon_desc-face_mask.nii.gz"))
        brain_neck = ants.image_read(str(atlas / "tpl-micanon_desc-brainNeck_mask.nii.gz"))
        atlas_face = ants.image_read(str(atlas / "tpl-micanon_desc-face_T1w.nii.gz"))

    with stages.stage("register T1w->atlas"):
        to_atlas = ants.registration(
            fixed=template, moving=t1, type_of_transform="antsRegistrationSyN[a]",
            outprefix=str(out / "T1w_2_atlas_"), singleprecision=True,
        )
    t1_to_atlas = to_atlas["fwdtransforms"]

    def pull(image, onto, transforms, invert, interpolator):
        return ants.apply_transforms(fixed=onto, moving=image, transformlist=transforms,
                                     whichtoinvert=invert, interpolator=interpolator)

    with stages.stage("deface T1w"):
        roi_t1 = pull(face_roi, t1, t1_to_atlas, [True], "genericLabel")
        defaced = t1 * (roi_t1 < 0.5)
    write(defaced, "T1w_defaced")

    with stages.stage("reface T1w"):
        neck_t1 = pull(brain_neck, t1, t1_to_atlas, [True], "genericLabel")
        face_t1 = rescale(pull(atlas_face, t1, t1_to_atlas, [True], "linear"), 0.0, float(t1.max()))
        refaced = neck_t1 * t1 + face_t1
    write(refaced, "T1w_refaced")

    with stages.stage("warp: SyNQuick face warp"):
        dilated = ants.iMath(neck_t1, "MD", DILATE_VOXELS)
        mask_inv = 1.0 - dilated
        face_fit = ants.registration(
            fixed=refaced, moving=t1, type_of_transform="antsRegistrationSyNQuick[s]", mask=mask_inv,
            outprefix=str(out / "refaceSyN_"), singleprecision=True,
        )
        face_mat = next(p for p in face_fit["fwdtransforms"] if p.endswith(".mat"))
        warp_path = next(p for p in face_fit["fwdtransforms"] if p.endswith("Warp.nii.gz"))
        warp = ants.image_read(warp_path)
        field = warp.numpy() * mask_inv.numpy()[..., None]  # fslmaths warp -mul mask_inv
        ants.image_write(warp.new_image_like(field.astype("float32")), warp_path)

    with stages.stage("warpface T1w"):
        warped = pull(t1, t1, [face_mat, warp_path, face_mat], [True, False, False], "nearestNeighbor")
    write(warped, "T1w_warpfaced")

    for path in images["others"]:
        name = short_name(path)
        with stages.stage("load"):
            image = ants.image_read(path)
        if image.dimension != 3:
            image = ants.slice_image(image, axis=3, idx=0)
        with stages.stage(f"register {name}->T1w"):
            fit = ants.registration(
                fixed=t1, moving=image, type_of_transform="antsRegistrationSyN[a]",
                outprefix=str(out / f"{name}_2_T1w_"), singleprecision=False,
            )
        to_t1 = fit["fwdtransforms"]
        with stages.stage(f"deface {name}"):
            roi = pull(roi_t1, image, to_t1, [True], "genericLabel")
            result = image * (roi < 0.5)
        write(result, f"{name}_defaced")
        with stages.stage(f"reface {name}"):
            face = pull(face_t1, image, to_t1, [True], "linear")
            neck = pull(neck_t1, image, to_t1, [True], "linear")
            face = rescale(face, float(image.min()), float(image.max()))
            result = neck * image + face
        write(result, f"{name}_refaced")
        with stages.stage(f"warpface {name}"):
            result = pull(image, image, [to_t1[0], face_mat, warp_path, face_mat, to_t1[0]],
                          [True, True, False, False, False], "nearestNeighbor")
        write(result, f"{name}_warpfaced")
    return images


def per_method(stages: dict[str, float], names: list[str]) -> dict[str, float]:
    """Seconds micapipe would take with -deface, -reface, -refacePro (warpface) or -all alone.

    Every method needs the load, the T1w -> atlas fit and each image's fit to the T1w; warpface
    also needs the T1w reface (its target) and the face warp. Writes are shared out by method.
    """
    shared = stages.get("load", 0) + stages.get("register T1w->atlas", 0)
    shared += sum(stages.get(f"register {n}->T1w", 0) for n in names if n != "T1w")
    write_each = stages.get("write", 0) / max(1, 3 * len(names))
    out = {}
    for method in METHODS:
        seconds = shared + sum(stages.get(f"{method} {n}", 0) + write_each for n in names)
        if method == "warpface":
            seconds += stages.get("reface T1w", 0) + stages.get("warp: SyNQuick face warp", 0)
        out[method] = round(seconds, 2)
    out["all"] = round(sum(stages.values()), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = session_parser(__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    start = time.perf_counter()
    stages = Stages()
    with stages.stage("import"):
        import ants

        ants.config._random_seed = args.seed  # ANTsPy reads its seed from this module global
    with tempfile.TemporaryDirectory(prefix="micanon-reference-") as tmp:
        images = run(args, stages, tmp)
    names = ["T1w"] + [short_name(p) for p in images["others"]]
    seconds = stages.as_dict()
    write_json(args.json, {
        "recipe": "micapipe_anonymize (antsRegistrationSyN -t a, antsRegistrationSyNQuick -t s) with ANTsPy",
        "threads": args.threads,
        "stages": seconds,
        "per_method_seconds": per_method({k: v for k, v in seconds.items() if k != "import"}, names),
        "wall_seconds": round(time.perf_counter() - start, 2),
        "cpu_seconds": round(cpu_seconds(), 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "versions": versions(),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
