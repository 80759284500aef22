"""The co-occurrence explorer (``python -m cfnet.explore``): a local web page where a person clicks
any pixel of an image and sees where the model looks from it.

``session`` holds one image after its forward pass and answers clicks from it; ``state`` the
model, the split, the images opened and the split's class co-occurrence matrix; ``uploads`` reads
an uploaded picture or refuses it in one line; ``app`` is the web layer (Starlette, served by
uvicorn) over them, and ``static/`` the page it serves.
"""
