"""retail_seg: segment a retailer's customers by purchasing behaviour."""
