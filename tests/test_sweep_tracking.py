"""What the trackers chart: a researcher's metrics against the training step, the resolved settings as params."""

import math
from types import SimpleNamespace

from itsel_ray.runs.plan import plan_stage
from itsel_ray.runs.sweep_file import load_sweep
from itsel_ray.sweep.tracking import chart_metrics, trial_params, training_step


def test_only_the_metrics_a_researcher_reads_are_charted():
    result = {"step": 40, "score": 71.5, "loss": 0.3, "best_score": 72.0, "eval_accuracy": 71.5, "eval_f1": math.nan,
              "trial": "tune/rte/seed=28", "trial_done": False, "wall_s": 12.0, "best_step": 30,
              "training_iteration": 4, "time_this_iter_s": 3.0, "pid": 123, "skipped": True}
    assert chart_metrics(result) == {"score": 71.5, "loss": 0.3, "best_score": 72.0, "eval_accuracy": 71.5}
    assert training_step(result) == 40  # not the 4th report
    assert training_step({"training_iteration": 4}) == 4 and training_step({"step": math.nan}) == 0


def test_the_params_are_the_resolved_settings():
    sweep = load_sweep("smoke")
    t = plan_stage(sweep, "transfer")[0]
    params = trial_params(sweep, "transfer", SimpleNamespace(config={"run": {"task": t.task, "seed": t.seed,
                                                                             "source": t.source}}))
    assert params["optim.lr"] == 0.3 and params["train.max_steps"] == 20 and params["train.loss"] == "label"
    assert params["train.eval_mode"] == "rank" and params["prompt.length"] == 4
    assert all(isinstance(v, (bool, int, float, str)) for v in params.values())
