# table.describe: summary statistics of `df` as a JSON-ready dict (output `summary`).
import math

import pandas as pd

df = dizest.input("df")
if not isinstance(df, pd.DataFrame):
    raise TypeError(
        "table.describe: input 'df' must be a pandas DataFrame, got "
        f"{type(df).__name__} (is it connected to a table output?)"
    )
if df.empty:
    raise ValueError("table.describe: the DataFrame is empty; there is nothing to describe")


def plain(value):
    """A JSON value: numpy scalars become Python numbers, NaN becomes None."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


stats = df.describe()
summary = {
    str(column): {str(stat): plain(value) for stat, value in values.items()}
    for column, values in stats.to_dict().items()
}
dizest.result("summary", stats)
dizest.output("summary", summary)
