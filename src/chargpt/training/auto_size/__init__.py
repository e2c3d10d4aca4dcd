"""model=auto: size the model for a time budget, this machine's speed and the corpus.

The rule (rule.py: `climb`, with `nearest` for the shape and `settle` for its recipe) is a pure
function of measured step times, the budget and the corpus size; `calibration.step_timer` measures
the step times (real batches, a warm-up step, then timed steps of each candidate) and
`run_config.apply_choice` writes the result into the run's config. The rule's constants sit at the
top of the modules that use them (the ladder and its anchor in ladder.py, the recipe's tables in
recipe.py, the timed steps in calibration.py, the costs and the climb's limits in rule.py), so that
measurements can set them. They are anchored on one measured optimum (the cpu_100s shape at 100 s
on a 2-core CPU) and were set by the measurement grid of scripts/budget_curve.py
(docs/EXPERIMENTS.md).

The rule, in short: climb a ladder of shapes from small to large. For each, the calibrated step
time gives the steps the budget holds, hence the tokens the run will see, and the ratio of those
tokens to the shape's non-embedding parameters. A short budget or a slow machine wants a small
model (more tokens per parameter), a long one a larger model: the pick is the shape whose ratio is
nearest (in log scale, a shortfall counting twice) to the ratio measured best at 100 s. Climbing
stops at the first shape below that ratio (larger ones are only farther from it), or when the
calibration would take more than a small fraction of the budget. Dropout and Muon's weight decay
follow the epochs the run will make over its training text (a dropout is timed, since it slows the
step); AdamW's rate and Muon's momentum follow its steps.

The modules, each built on those before it:
  ladder.py       the candidate shapes, their non-embedding parameters and the target ratio
  recipe.py       dropout and weight decay by epochs, AdamW's rate and Muon's momentum by steps
  choice.py       what the budget buys with a shape, the rule's choice, and its record (kept in
                  the checkpoint and budget.json, read back by a resumed run)
  calibration.py  timing a shape's training steps on this machine
  rule.py         the climb: what the budget buys, the pick, the recipe settled for it
  run_config.py   the checks of a model=auto config, the choice written into it, and the
                  override that reproduces the run without model=auto
  report.py       the block a run prints: the candidates, the choice and why
"""
