"""The engine: how a task call travels from ``apply_async`` to its result.

The life of a workflow, one module per step (a plain call with no callbacks skips the store:
``dispatch.send`` builds one message and publishes it)::

    dispatch.send            check the options; dag.compile the canvas into a Workflow
    dispatch.start           one NodeRecord per node, saved once: Backend.save_workflow
    messages.publish         the nodes with no inputs (messages.for_node -> messages.build)
    worker.consume           each pool process fetches from its own Transport.consumer
    consumer.Handler         checks headers, expiry, ETA (parks it), duplicates; decodes
    execute.run_call         runs the task with its Request set, sends the task signals
    complete.settle          records the outcome (a meta, see metas) and, atomically,
    Backend.complete         marks it done for each successor; returns the ready ones
    messages.publish         ready tasks get their input's value; gathers and forwards are
                             resolved in place, errbacks of a failure published

Beside them: ``protocol`` (the message format), ``metas`` (how results and exceptions are
stored and safely read back), ``replace`` (``Task.replace``), ``workflow_view`` (a stored
workflow read back with every node's state), ``eager`` (the same compiled workflow run in this
process) and ``worker`` (pools, supervisor, timer, shutdown).

The engine never imports ``canvas.app``, ``canvas.task`` or ``canvas.result`` at run time: the
app hands itself in, and the app turns what the engine returns (a ``dag.ResultSpec``, an eager
run's outcomes) into result handles. See docs/architecture.md.
"""
