"""The pages' drawing code: draw-and-return functions over the engine; the only streamlit importers."""
