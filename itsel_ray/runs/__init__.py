"""A sweep's run state on storage, with no Ray: the definition, the trial plan, and every file the sweep keeps.

The Ray adapters in itsel_ray/sweep/ are a thin layer over this package. Each file format under <storage>/<sweep>/
has one owner module:

    sweep.yaml                         the resolved definition ........................ sweep_file (sweep_spec)
    driver.lock                        the running driver and its heartbeat ............ lock
    tune/<task>/seed=<s>/              trial folders: the engine's files (artifacts.TrialFiles)
    transfer/<src>__<tgt>/seed=<s>/      plus sweep_trial.json, the config fingerprint .. trial_state
    source_prompts/                    the chosen source prompts and index.json ........ source_prompts
    progress/<stage>.jsonl             the append-only progress log of each stage ...... progress
    events/<stage>/<trial>/            one file per trial attempt event ................ attempts
    results/                           results, prompts and model-score tables ......... tables, model_tables
    analysis/                          the analysis outputs ............................ itsel_ray.analysis
    ray_tune/<stage>-<time>/           Tune's own experiment folders (TensorBoard files per trial)
    logs/                              the driver's full log of each command

plan expands the trial plan; status reads all of the above into the `status` command's table.
"""
