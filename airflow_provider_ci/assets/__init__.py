"""Objects in Tencent COS as Airflow assets (``cos://<bucket>/<key>``) and the events that announce them."""
