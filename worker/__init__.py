"""The actors: collect (provider plugins), cleanup (plan, delete), metrics (generate, serve)."""
