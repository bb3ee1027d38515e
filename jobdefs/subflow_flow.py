"""Night Batch's subflow example as a Flow: a validation flow used as one step of an ETL.

    python jobdefs/subflow_flow.py            (the dashboard on a terminal, plain lines otherwise)
"""

from jobflow_tui.flow import Flow

validation = Flow("validation")


@validation.task()
def validate_schema(task):
    return {"valid": True}


@validation.task(depends_on=["validate_schema"])
def validate_quality(task):
    # Inside the subflow its neighbours keep the names of their own flow.
    assert task.pull_output("validate_schema")["valid"]
    return {"score": 95}


flow = Flow("etl-with-validation")


@flow.task()
def extract(task):
    return {"data": [1, 2, 3]}


flow.subflow("validation", validation, depends_on=["extract"])


@flow.task(depends_on=["validation"])
def load(task):
    # From outside, a subflow's tasks are `<subflow>/<task>`.
    score = task.pull_output("validation/validate_quality")["score"]
    rows = task.pull_output("extract")["data"]
    print(f"loading {len(rows)} rows, validation score {score}")
    return {"loaded": True}


if __name__ == "__main__":  # the worker imports this file to find the functions
    raise SystemExit(flow.run())
