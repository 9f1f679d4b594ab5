# table.plot: chart column y against column x as a line, bar or scatter plot (result `plot`).
import matplotlib
import pandas as pd
from matplotlib.figure import Figure

matplotlib.use("Agg")  # never open a window, whatever backend the process was given

KINDS = ("line", "bar", "scatter")

df = dizest.input("df")
x = dizest.input("x")
y = dizest.input("y")
kind = dizest.input("kind", "line")
if not isinstance(df, pd.DataFrame):
    raise TypeError(
        "table.plot: input 'df' must be a pandas DataFrame, got "
        f"{type(df).__name__} (is it connected to a table output?)"
    )
if kind not in KINDS:
    raise ValueError(f"table.plot: kind {kind!r} is not one of {', '.join(KINDS)}")
for role, column in (("x", x), ("y", y)):
    if column not in df.columns:
        raise ValueError(
            f"table.plot: {role} column {column!r} not found "
            f"(columns: {', '.join(map(str, df.columns))})"
        )
if not pd.api.types.is_numeric_dtype(df[y]):
    raise ValueError(f"table.plot: y column {y!r} must be numeric, not {df[y].dtype}")

# A Figure without pyplot: no global figure state shared with other flows.
fig = Figure(figsize=(7, 4), layout="tight")
ax = fig.add_subplot()
if kind == "scatter":
    ax.scatter(df[x], df[y])
    ax.set_title(f"{y} by {x}")
else:
    totals = df.groupby(x, sort=True)[y].sum()
    if kind == "bar":
        ax.bar([str(v) for v in totals.index], totals.to_numpy())
    else:
        ax.plot(totals.index, totals.to_numpy(), marker="o")
    ax.set_title(f"total {y} by {x}")
ax.set_xlabel(str(x))
ax.set_ylabel(str(y))
ax.grid(True, alpha=0.3)
dizest.result("plot", fig)
