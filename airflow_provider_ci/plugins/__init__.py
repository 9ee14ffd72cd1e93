"""The "Tencent CI" view in the Airflow UI (an Airflow 3.1+ plugin; see docs/ui.md).

``ui`` wires the plugin and its FastAPI app, ``records`` reads what a task instance recorded,
``views`` assembles the pages and the JSON twin, ``thumbnails`` serves bounded previews.
"""
