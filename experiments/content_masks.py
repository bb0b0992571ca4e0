"""Where each token of z draws in a content-and-mask output network (issue 29).

  .venv/bin/python -m experiments.content_masks RUN [RUN ...] --out DIR

For each run trained with `model.conditioning='content_mask'`, the first `--num` images of its
evaluation split and the masks of their codes' K tokens (`LoadedModel.content_masks`, t = 1).
Writes DIR/content_masks.md and .json, per run and token, over the images:
- `share`: the token's mean mask, the part of the image it draws;
- `owns`: the fraction of pixels where its mask is the largest;
- `moves`: the mean distance (in pixels) of its mask's centre from that centre's mean over the
  images, large for a token that follows something which moves;
and per run `sharpness`, the mean over pixels of the largest mask (1: every pixel drawn by one
token; 1/K: all alike). DIR/<dataset>_<row>_<seed>.png shows the first `--show` images, each as a
row: the image, then the K masks in grey (white: 1).

If each token owned one factor's region, the object's token would own few pixels and move with
the object, and the floor's and wall's tokens would own their halves.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from paramrel_jax import api
from paramrel_jax.viz import images as image_grids


def token_stats(masks: np.ndarray) -> dict:
  """Per-token statistics of masks (N, K, H, W) over the N images (module docstring)."""
  num_tokens, height, width = masks.shape[1:]
  mass = masks.sum(axis=(2, 3))  # (N, K)
  ys, xs = np.mgrid[:height, :width]
  centre = (
    np.stack([(masks * ys).sum(axis=(2, 3)), (masks * xs).sum(axis=(2, 3))], axis=-1)
    / np.maximum(mass, 1e-12)[..., None]
  )  # (N, K, 2)
  moves = np.linalg.norm(centre - centre.mean(axis=0), axis=-1).mean(axis=0)
  owner = masks.argmax(axis=1)  # (N, H, W)
  return {
    "share": masks.mean(axis=(0, 2, 3)).tolist(),
    "owns": [float(np.mean(owner == k)) for k in range(num_tokens)],
    "moves": moves.tolist(),
    "sharpness": float(masks.max(axis=1).mean()),
  }


def save_mask_rows(path: str, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
  """Writes a PNG of a row per image (N, H, W, C): the uint8 image and its K masks (N, K, H, W),
  grey from 0 (black) to 1 (white). Returns the uint8 grid."""
  channels = images.shape[-1]
  grey = np.round(np.clip(masks, 0.0, 1.0) * 255).astype(np.uint8)
  grey = np.repeat(grey[..., None], channels, axis=-1)  # (N, K, H, W, C)
  cells = np.concatenate([images[:, None], grey], axis=1)
  return image_grids.save_pixels(
    path,
    cells.reshape(-1, *images.shape[1:]),
    nrow=cells.shape[1],
    col_labels=["image", *(f"token {k}" for k in range(masks.shape[1]))],
  )


def run_masks(model: api.LoadedModel, num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 images (N, H, W, C), masks (N, K, H, W)) of a run's first `num` evaluation images."""
  images = model.eval_data(num)
  return images, model.content_masks(images, seed=seed)


def table(results: dict[str, dict]) -> list[str]:
  """Markdown rows: per run and token its share, the pixels it owns and how far it moves."""
  rows = ["| run | token | share | owns | moves (px) |", "| --- | --- | --- | --- | --- |"]
  for run, r in results.items():
    for k, (share, owns, moves) in enumerate(zip(r["share"], r["owns"], r["moves"], strict=True)):
      rows.append(f"| {run} | {k} | {share:.3f} | {owns:.3f} | {moves:.2f} |")
    rows.append(f"| {run} | sharpness | {r['sharpness']:.3f} | | |")
  return rows


def main(argv: list[str] | None = None) -> list[str]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("runs", nargs="+", help="trained run directories (conditioning content_mask)")
  parser.add_argument("--num", type=int, default=512, help="evaluation images per run")
  parser.add_argument("--show", type=int, default=8, help="images drawn per run")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", required=True, help="folder for the .md, .json and .png")
  args = parser.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  results = {}
  for run in args.runs:
    name = "_".join(run.rstrip("/").split(os.sep)[-3:])  # dataset_row_seed
    images, masks = run_masks(api.load(run), args.num, args.seed)
    results[name] = {"run": run, **token_stats(masks)}
    save_mask_rows(os.path.join(args.out, f"{name}.png"), images[: args.show], masks[: args.show])
  rows = table(results)
  with open(os.path.join(args.out, "content_masks.json"), "w") as f:
    json.dump({"num": args.num, "seed": args.seed, "runs": results}, f, indent=1)
  with open(os.path.join(args.out, "content_masks.md"), "w") as f:
    f.write("\n".join(rows) + "\n")
  print("\n".join(rows))
  return rows


if __name__ == "__main__":
  main()
