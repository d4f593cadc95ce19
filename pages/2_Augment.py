"""Augment: albumentations transforms on image + mask, a seeded gallery, the pitfall, export."""

from unet_demo.ui.augment_ui import augment_page
from unet_demo.ui.common import page_setup

page_setup("Augment images and masks together", "🎲")
augment_page()
