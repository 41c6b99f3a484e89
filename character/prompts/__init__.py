"""The paper's prompt texts (appendices A, B, C, D, I) and the functions that fill them in."""
