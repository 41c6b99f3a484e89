"""The job's one report: what training did to the model, in numbers, figures and examples."""
