"""Operating a broker: the HTTP listener with /metrics, /healthz, /readyz and the web console.

Layering: ``ops`` sits above ``broker`` (it reads the broker's state and registers the metrics
hooks on its request pipeline, partitions and log cleaner) and below ``server`` (which starts
the HTTP listener in the broker's nursery). It never imports ``server``, and nothing below
``server`` imports it.
"""
