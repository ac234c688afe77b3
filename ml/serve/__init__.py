"""The HTTP model server: one verified bundle, ONNX Runtime by default, a lean predict path.

`ml.serve.app.create_app(settings)` builds the ASGI app; `ml.serve.runner.serve(settings)` runs it
on uvicorn; `python -m ml.serve` and `liftlock serve` are the two entry points. The container
image that bakes one bundle in is a build step: infra/components/image_builder.py.
"""
