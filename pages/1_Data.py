"""Data: browse a bundled dataset with mask overlays, statistics, its card and preprocessing."""

from unet_demo.ui.common import page_setup
from unet_demo.ui.data_ui import data_page

page_setup("Explore the data", "🔎")
data_page()
