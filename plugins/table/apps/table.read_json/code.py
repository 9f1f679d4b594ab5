# table.read_json: read a JSON file (records or columns) into a pandas DataFrame (output `df`).
import json

import pandas as pd

path = dizest.input("path")
if not path:
    raise ValueError("table.read_json: the 'path' variable is empty; set it to a JSON file path")
drive = dizest.drive()
if not drive.isfile(path):
    raise FileNotFoundError(
        f"table.read_json: no file at {path!r} (paths are relative to the working directory)"
    )
try:
    data = drive.read.json(path)
except (json.JSONDecodeError, UnicodeDecodeError) as exc:
    raise ValueError(f"table.read_json: {path!r} is not valid JSON: {exc}") from exc

if isinstance(data, list) and all(isinstance(row, dict) for row in data):
    df = pd.DataFrame.from_records(data)  # [{"col": value, ...}, ...]
elif isinstance(data, dict) and all(isinstance(col, (list, dict)) for col in data.values()):
    df = pd.DataFrame(data)  # {"col": [values]} or {"col": {"row": value}}
else:
    raise ValueError(
        f"table.read_json: {path!r} must hold a list of records [{{...}}, ...] "
        f"or an object of columns {{column: [values]}}, not {type(data).__name__}"
    )

print(f"table.read_json: {len(df)} rows x {len(df.columns)} columns from {path}")
display(df.head())
dizest.output("df", df)
