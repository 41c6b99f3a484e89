"""Config schemas (Hydra ConfigStore) and the checks that run before a job touches disk."""
