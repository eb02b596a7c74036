"""The codebook atlas (atlas.py) as files and logs: `atlas.json`, a readable `atlas.md`, and
`atlas.png` (the training persona vectors on their two main axes, coloured by their code, the
codes marked: one look shows whether the codebook covers the personas or collapsed); where a
logger keeps tables and images (W&B), a table and the image too."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from morpheus_pl.atlas import Atlas, build_atlas  # noqa: E402

log = logging.getLogger("morpheus_pl")
ATLAS_FILES = ("atlas.json", "atlas.md", "atlas.png")
COLUMNS = ("code", "share", "segments", "roles", "purity", "top_fact", "usage", "nearest")


def atlas_is_current(folder: Path, k: int) -> bool:
    """Whether `folder` holds an atlas with `k` nearest sentences per code."""
    path = Path(folder) / "atlas.json"
    if not all((Path(folder) / name).is_file() for name in ATLAS_FILES):
        return False
    return json.loads(path.read_text(encoding="utf-8"))["summary"]["k"] == k


def stage_atlas(module, dm, folder: Path, stage: str, k: int, loggers: Sequence = ()) -> Path:
    """Build, write and log the atlas of a trained stage module; returns its folder."""
    atlas = build_atlas(module, dm, k)
    write_atlas(atlas, folder, stage)
    for logger in loggers:
        if hasattr(logger, "log_table") and hasattr(logger, "log_image"):
            logger.log_table(f"atlas/{stage}", columns=list(COLUMNS),
                             data=[[_cell(e[c]) for c in COLUMNS] for e in atlas.codes])
            logger.log_image(f"atlas/{stage}_png", images=[str(Path(folder) / "atlas.png")])
    s = atlas.summary
    log.info("%s atlas: %d of %d codes used, %d pure (>= %.0f %% one fact), in %s", stage,
             s["codes_used"], s["codes"], s["pure_codes"], 100 * s["pure_threshold"], folder)
    return Path(folder)


def _cell(value):
    return " | ".join(value) if isinstance(value, list) else value


def write_atlas(atlas: Atlas, folder: Path, stage: str) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"stage": stage, "summary": atlas.summary, "codes": atlas.codes}
    (folder / "atlas.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n",
                                       encoding="utf-8")
    (folder / "atlas.md").write_text(atlas_markdown(atlas, stage), encoding="utf-8")
    atlas_png(atlas, folder / "atlas.png", stage)


def atlas_markdown(atlas: Atlas, stage: str) -> str:
    s = atlas.summary
    lines = [f"# Codebook atlas ({stage})", "",
             f"{s['segments']} training persona segments of {s['roles']} roles; {s['codes_used']} "
             f"of {s['codes']} codes used; {s['pure_codes']} pure (at least "
             f"{100 * s['pure_threshold']:.0f} % of their segments state one fact).", "",
             f"| code | share | roles | purity | top fact | usage | {s['k']} nearest training "
             f"persona sentences |", "|---|---|---|---|---|---|---|"]
    for e in atlas.codes:
        purity = "–" if e["purity"] is None else f"{e['purity']:.2f}"
        nearest = "; ".join(sentence.replace("|", "/") for sentence in e["nearest"])
        lines.append(f"| {e['code']} | {100 * e['share']:.1f} % | {e['roles']} | {purity} | "
                     f"{e['top_fact'] or '–'} | {e['usage']:.2f} | {nearest} |")
    return "\n".join(lines) + "\n"


def atlas_png(atlas: Atlas, path: Path, stage: str) -> None:
    points, codes = atlas.points.numpy(), atlas.code_points.numpy()
    fig, ax = plt.subplots(figsize=(7, 6))
    colours = plt.get_cmap("tab20")
    ax.scatter(points[:, 0], points[:, 1], s=8, alpha=0.6,
               c=[colours(int(k) % 20) for k in atlas.assigned.tolist()])
    ax.scatter(codes[:, 0], codes[:, 1], marker="X", s=70, c="black", label="codes")
    for e, (x, y) in zip(atlas.codes, codes):
        ax.annotate(str(e["code"]), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    s = atlas.summary
    ax.set_title(f"{stage}: {s['segments']} persona segments, {s['codes_used']}/{s['codes']} "
                 f"codes used, {s['pure_codes']} pure")
    ax.set_xlabel("principal axis 1")
    ax.set_ylabel("principal axis 2")
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
