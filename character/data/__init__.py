"""Text shipped with the package: offline prompt sets and the tiny model's corpus."""
