/* placeholder while ctl is split */
int ctl__placeholder;
