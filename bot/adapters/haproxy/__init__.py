"""HAProxy as the traffic router: weights of a backend's two servers through its runtime API
(``runtime``), which server hosts which version kept in SQLite (``router``)."""
