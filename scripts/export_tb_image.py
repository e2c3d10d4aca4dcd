"""Save an image a run logged to TensorBoard as a PNG file (e.g. for documentation).

    python scripts/export_tb_image.py RUN_DIR/tensorboard attention/maps docs/img/attention_maps.png

Takes the image of the last logged step (or --step N). TensorBoard stores images PNG-encoded,
so the bytes are written as they are.
"""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

from chargpt.errors import exit_usage
from script_cli import ScriptParser, existing_folder, run_script


def main() -> None:
    parser = ScriptParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir", type=existing_folder, help="the folder with the events file")
    parser.add_argument("tag", help="image tag, e.g. attention/maps")
    parser.add_argument("out", type=Path, help="PNG file to write")
    parser.add_argument("--step", type=int, default=None, help="the step to export (default: the last)")
    args = parser.parse_args()
    if args.out.is_dir():  # checked before the events are read: writing into it was a traceback
        example = args.out / f"{args.tag.replace('/', '_')}.png"
        exit_usage(f"{args.out} is a folder; give the PNG file to write, e.g. {example}")
    events = EventAccumulator(str(args.logdir), size_guidance={IMAGES: 0})
    events.Reload()
    if args.tag not in events.Tags()[IMAGES]:
        exit_usage(f"no image tag {args.tag!r} in {args.logdir}; there are {events.Tags()[IMAGES]}")
    images = events.Images(args.tag)
    image = images[-1] if args.step is None else next((i for i in images if i.step == args.step), None)
    if image is None:
        exit_usage(f"no {args.tag!r} image at step {args.step}; steps: {[i.step for i in images]}")
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(image.encoded_image_string)
    except OSError as err:
        exit_usage(f"cannot write {args.out} ({err.strerror}); give a file in a folder you can write")
    print(f"step {image.step}: {image.width}x{image.height} -> {args.out}")


if __name__ == "__main__":
    run_script(main)
