"""Scripts that jobs run inside an engine's own Python (Flink's virtualenv, say): shipped with Headwater as files,
never imported by it, and depending on nothing but the engine's libraries."""
