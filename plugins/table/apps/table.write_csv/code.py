# table.write_csv: write `df` to a CSV file on the drive, without its index (output `path`).
import pandas as pd

df = dizest.input("df")
path = dizest.input("path")
if not isinstance(df, pd.DataFrame):
    raise TypeError(
        "table.write_csv: input 'df' must be a pandas DataFrame, got "
        f"{type(df).__name__} (is it connected to a table output?)"
    )
if not path:
    raise ValueError("table.write_csv: the 'path' variable is empty; set it to a CSV file path")

dizest.drive().write.csv(path, df)
print(f"table.write_csv: wrote {len(df)} rows x {len(df.columns)} columns to {path}")
dizest.output("path", path)
