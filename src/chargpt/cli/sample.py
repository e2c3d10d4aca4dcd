"""chargpt-sample: stream text from a checkpoint (file or run directory)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from chargpt.cli.common import (
    CONFIG_PATH,
    cli_task,
    pick_device,
    quiet_known_warnings,
    resolve_prompt,
    run_main,
)
from chargpt.errors import ConfigError, exit_on_user_error
from chargpt.inference import load, new_generator
from chargpt.model.sampling import check_sampling


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="sample")
@cli_task
@exit_on_user_error
def _hydra_main(cfg: DictConfig) -> None:
    quiet_known_warnings()
    if not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: chargpt-sample ckpt_path=RUN_DIR_OR_CKPT_FILE")
    if cfg.num_samples < 1:
        raise ConfigError(f"num_samples={cfg.num_samples} must be at least 1")
    trained = load(cfg.ckpt_path, pick_device(cfg.device))
    # Bad settings or prompt characters are reported before any text is printed.
    check_sampling(cfg.temperature, cfg.top_k, cfg.top_p, cfg.max_new_tokens)
    prompt = resolve_prompt(cfg.prompt, trained.tokenizer)
    generator = new_generator(trained.device, cfg.seed)
    for i in range(cfg.num_samples):
        if i:
            print("\n---")
        print(prompt, end="", flush=True)
        for ch in trained.stream(
            prompt, cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.top_p,
            generator=generator, use_cache=cfg.use_cache, compile=cfg.compile,
        ):
            print(ch, end="", flush=True)
    print()


def main() -> None:
    run_main(_hydra_main)


if __name__ == "__main__":
    main()
