"""How often batched serving changes a seeded request's text: requests decoded together by the
serving engine against the same requests decoded alone (chargpt-sample's path), character by
character, on a randomly initialised model of the given preset.

    python scripts/check_batch_identity.py                  # model=tiny, 8 requests x 2000 characters x 3
    python scripts/check_batch_identity.py --temperature 0  # greedy
"""

from __future__ import annotations

import json
import string
import threading
from collections.abc import Callable

import torch
from hydra import compose, initialize_config_dir

from chargpt.cli import CONFIG_PATH
from chargpt.data.tokenizer import CharTokenizer
from chargpt.hydra_run import plain
from chargpt.inference import TrainedModel
from chargpt.model import ModelConfig, build_model
from chargpt.serving.engine import Engine, Event, Job
from script_cli import ScriptParser, positive, run_script

VOCAB = sorted(set(string.ascii_letters + string.digits + " \n.,;:!?'-&$"))[:65]


def batched_texts(engine: Engine, seeds: list[int], tokens: int, temperature: float) -> dict[int, str]:
    """The texts of requests (prompt VOCAB[0]) submitted together, so they decode in one batch."""
    texts = {s: "" for s in seeds}
    ended = threading.Semaphore(0)

    def emitter(seed: int) -> Callable[[Event], None]:
        def emit(event: Event) -> None:  # on the decoding thread: must not block
            if event.kind == "text":
                texts[seed] += event.text
            else:
                ended.release()
        return emit

    for s in seeds:
        generator = torch.Generator().manual_seed(s)
        engine.submit(Job([0], tokens, 1, temperature, None, None, generator, emitter(s)))
    for _ in seeds:
        ended.acquire()
    return texts


def main() -> None:
    p = ScriptParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--requests", type=positive, default=8)
    p.add_argument("--tokens", type=positive, default=2000)
    p.add_argument("--rounds", type=positive, default=3)
    p.add_argument("--temperature", type=float, default=1.0)
    args = p.parse_args()
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"model={args.model}"])
    torch.manual_seed(0)
    model = build_model(ModelConfig.from_dict(plain(cfg.model)), len(VOCAB)).eval()
    trained = TrainedModel(model, CharTokenizer(VOCAB))
    engine = Engine(model, trained.tokenizer, max_batch=args.requests)
    engine.start()
    compared = differing_requests = differing_chars = 0
    try:
        for round_ in range(args.rounds):
            seeds = [round_ * 1000 + i for i in range(args.requests)]
            texts = batched_texts(engine, seeds, args.tokens, args.temperature)
            for s in seeds:
                alone = trained.generate(VOCAB[0], seed=s, max_new_tokens=args.tokens,
                                         temperature=args.temperature)[0]
                compared += len(alone)
                pairs = enumerate(zip(alone, texts[s], strict=True))
                first = next((i for i, (a, b) in pairs if a != b), None)
                if first is not None:
                    differing_requests += 1
                    differing_chars += len(alone) - first
                    print(f"seed {s}: the batched text leaves the lone one at character {first}")
    finally:
        engine.close()
    print(json.dumps({"model": args.model, "characters": compared, "requests": args.requests * args.rounds,
                      "requests_that_differ": differing_requests,
                      "characters_after_a_difference": differing_chars}))


if __name__ == "__main__":
    run_script(main)
