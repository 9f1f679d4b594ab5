# table.read_csv: read a CSV file from the drive into a pandas DataFrame (output `df`).
import pandas as pd

path = dizest.input("path")
sep = dizest.input("sep", ",")
if not path:
    raise ValueError("table.read_csv: the 'path' variable is empty; set it to a CSV file path")
drive = dizest.drive()
if not drive.isfile(path):
    raise FileNotFoundError(
        f"table.read_csv: no file at {path!r} (paths are relative to the working directory)"
    )


def read_csv(path, sep):
    try:
        df = drive.read.csv(path, sep=sep)
    except TypeError:  # original DIZEST's drive: read.csv takes no pandas options
        df = None
    if isinstance(df, pd.DataFrame):
        return df
    return pd.read_csv(drive.abspath(path), sep=sep)  # original DIZEST's drive gives an array


try:
    df = read_csv(path, sep)
except (ValueError, UnicodeDecodeError) as exc:  # pandas' parser errors are ValueErrors
    raise ValueError(f"table.read_csv: cannot parse {path!r} as CSV: {exc}") from exc

print(f"table.read_csv: {len(df)} rows x {len(df.columns)} columns from {path}")
display(df.head())
dizest.output("df", df)
