"""The README's example project: two tasks and a workflow that uses them.

With no broker configured, canvas uses its embedded default: a SQLite file in a per-user cache
directory, shared by every process of this app on this machine; nothing else to install or start.
Set ``broker="redis://localhost:6379"`` (or ``amqp://...``) for a real broker.
"""

from canvas import Canvas, chord

app = Canvas("proj")


@app.task
def add(x, y):
    return x + y


@app.task
def tsum(numbers):
    return sum(numbers)


# 2 + 2, then + 4, then a chord: ten additions in parallel, summed by one task.
workflow = add.s(2, 2) | add.s(4) | chord([add.s(i) for i in range(10)], tsum.s())
