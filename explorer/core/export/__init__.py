"""Take it home: what a workspace built, as a runnable PyTorch script or a Jupyter notebook.

`export_script(kind, source)` and `export_notebook(kind, source)` take a workspace model (or, for an
expression, the program text; for a network a NetSpec; for pretraining a config) and return the code.
The code imports torch alone and prints the numbers the app shows.
"""
