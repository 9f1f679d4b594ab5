# table.filter: keep the rows of `df` matching a pandas query expression (output `df`).
import pandas as pd

df = dizest.input("df")
query = dizest.input("query", "")
if not isinstance(df, pd.DataFrame):
    raise TypeError(
        "table.filter: input 'df' must be a pandas DataFrame, got "
        f"{type(df).__name__} (is it connected to a table output?)"
    )

if not str(query).strip():
    kept = df
else:
    try:
        kept = df.query(query)
    except Exception as exc:  # pandas raises SyntaxError, NameError, KeyError, TypeError...
        raise ValueError(
            f"table.filter: query {query!r} is invalid: {type(exc).__name__}: {exc} "
            f"(columns: {', '.join(map(str, df.columns))})"
        ) from exc

print(f"table.filter: kept {len(kept)} of {len(df)} rows" + (f" where {query}" if query else ""))
dizest.output("df", kept)
