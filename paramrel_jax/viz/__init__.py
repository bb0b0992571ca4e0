"""Pictures: image grids with labels (`images`) and line and scatter plots (`plots`), as PNG."""
